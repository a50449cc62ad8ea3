#include "actors/executor/fatbin/ptx.h"

#include <cstdint>
#include <unordered_set>
#include <utility>
#include <vector>

namespace vgpu::fatbin {

namespace {

// Sizes beyond this are not plausible in any module; capping keeps every
// product below 2^64 without overflow checks at each step.
constexpr uint64_t kSizeCap = 1ull << 40;
// A parameter is a handful of tokens; a longer one is garbage, not PTX.
constexpr size_t kMaxParamTokens = 64;
// Where ptxas puts the parameter block for sm_90: c[0x0][0x210]. It aligns
// each parameter's address in that bank, not its offset in the block, which
// differs for alignments above 16 (0x210 is a multiple of 16 only): an
// __align__(32) struct after a char sits at offset 16. cuFuncGetParamInfo
// reports ptxas's offsets, so the reference must place parameters the same way.
constexpr uint64_t kParamBankBase = 0x210;

enum class tok { word, number, string, punct, end };

struct token {
  tok kind = tok::end;
  std::string_view text;
  bool is(std::string_view s) const {
    return (kind == tok::word || kind == tok::punct) && text == s;
  }
  // A name (kernel, parameter, variable): a word that is not a directive.
  bool is_name() const { return kind == tok::word && !text.empty() && text[0] != '.'; }
};

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool word_start(char c) { return is_alpha(c) || c == '_' || c == '$' || c == '%' || c == '.'; }
bool word_char(char c) { return is_alpha(c) || is_digit(c) || c == '_' || c == '$'; }

// Splits PTX into words (directives, types, names), numbers, strings and
// one-character punctuation. Comments vanish; strings are kept whole so that
// a `//` or brace inside `.file 1 "..."` cannot confuse the brace counting.
class lexer {
 public:
  explicit lexer(std::string_view s) : s_(s) {}

  token next() {
    skip_blank();
    if (pos_ >= s_.size()) return {tok::end, {}};
    const size_t start = pos_;
    const char c = s_[pos_++];
    tok kind = tok::punct;
    if (c == '"') {
      while (pos_ < s_.size() && s_[pos_] != '"') pos_ += (s_[pos_] == '\\') ? 2 : 1;
      pos_ = pos_ < s_.size() ? pos_ + 1 : s_.size();
      kind = tok::string;
    } else if (word_start(c)) {
      while (pos_ < s_.size() && word_char(s_[pos_])) ++pos_;
      kind = tok::word;
    } else if (is_digit(c)) {
      // Also swallows float forms such as 0f3F800000 and 1.5.
      while (pos_ < s_.size() && (word_char(s_[pos_]) || s_[pos_] == '.')) ++pos_;
      kind = tok::number;
    }
    return {kind, s_.substr(start, pos_ - start)};
  }

 private:
  void skip_blank() {
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      if (static_cast<unsigned char>(c) <= ' ') {
        ++pos_;
      } else if (c == '/' && pos_ + 1 < s_.size() && s_[pos_ + 1] == '/') {
        const size_t eol = s_.find('\n', pos_);
        pos_ = eol == std::string_view::npos ? s_.size() : eol;
      } else if (c == '/' && pos_ + 1 < s_.size() && s_[pos_ + 1] == '*') {
        const size_t close = s_.find("*/", pos_ + 2);
        pos_ = close == std::string_view::npos ? s_.size() : close + 2;
      } else {
        return;
      }
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
};

// PTX integer literals: decimal, 0x hex, 0b binary, 0-prefixed octal, with an
// optional U suffix. False for anything else or for values above kSizeCap.
bool parse_uint(std::string_view s, uint64_t* v) {
  if (!s.empty() && (s.back() == 'U' || s.back() == 'u')) s.remove_suffix(1);
  if (s.empty()) return false;
  unsigned base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s.remove_prefix(2);
  } else if (s.size() > 2 && s[0] == '0' && (s[1] == 'b' || s[1] == 'B')) {
    base = 2;
    s.remove_prefix(2);
  } else if (s.size() > 1 && s[0] == '0') {
    base = 8;
    s.remove_prefix(1);
  }
  uint64_t r = 0;
  for (char c : s) {
    unsigned d;
    if (is_digit(c)) d = static_cast<unsigned>(c - '0');
    else if (c >= 'a' && c <= 'f') d = static_cast<unsigned>(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') d = static_cast<unsigned>(c - 'A' + 10);
    else return false;
    if (d >= base) return false;
    r = r * base + d;
    if (r > kSizeCap) return false;
  }
  *v = r;
  return true;
}

// Bytes of a PTX fundamental type used for data; 0 when `t` is not one.
uint32_t type_size(std::string_view t) {
  static const std::pair<std::string_view, uint32_t> kTypes[] = {
      {".b8", 1},      {".u8", 1},       {".s8", 1},    {".b16", 2},   {".u16", 2},
      {".s16", 2},     {".f16", 2},      {".bf16", 2},  {".b32", 4},   {".u32", 4},
      {".s32", 4},     {".f32", 4},      {".f16x2", 4}, {".bf16x2", 4}, {".tf32", 4},
      {".b64", 8},     {".u64", 8},      {".s64", 8},   {".f64", 8},   {".b128", 16},
  };
  for (const auto& [name, size] : kTypes) {
    if (t == name) return size;
  }
  return 0;
}

// Texture, sampler and surface references: 8-byte handles as parameters,
// no memory of the module's own as variables.
bool is_opaque_type(std::string_view t) {
  return t == ".texref" || t == ".samplerref" || t == ".surfref";
}

bool is_state_space(std::string_view t) {
  return t == ".global" || t == ".const" || t == ".local" || t == ".shared";
}

uint64_t capped_mul(uint64_t a, uint64_t b) {
  return (b != 0 && a > kSizeCap / b) ? kSizeCap + 1 : a * b;
}

class parser {
 public:
  parser(std::string_view text, module_info* out, std::string* why)
      : lx_(text), out_(out), why_(why) {}

  bool run() {
    if (!lx_.next().is(".version")) return fail("does not start with a .version directive");
    bool is_extern = false;  // linkage seen before the declaration it belongs to
    for (;;) {
      const token t = lx_.next();
      if (t.kind == tok::end) return true;
      if (t.is(".extern")) {
        is_extern = true;
        continue;
      }
      if (t.is(".visible") || t.is(".weak") || t.is(".common")) continue;
      bool ok = true;
      if (t.is(".entry")) ok = entry();
      else if (t.is(".func")) ok = skip_function();
      else if (t.is(".global")) ok = variable(false, is_extern);
      else if (t.is(".const")) ok = variable(true, is_extern);
      else if (t.is("{")) ok = skip_block();  // .section contents and the like
      else if (t.is("}")) ok = fail("unbalanced '}' at module level");
      if (!ok) return false;
      is_extern = false;
    }
  }

 private:
  bool fail(std::string msg) {
    *why_ = "PTX " + std::move(msg);
    return false;
  }

  // After a '{': consumes up to its matching '}'.
  bool skip_block() {
    for (uint64_t depth = 1; depth > 0;) {
      const token t = lx_.next();
      if (t.kind == tok::end) return fail("ends inside a { } block");
      if (t.is("{")) ++depth;
      if (t.is("}")) --depth;
    }
    return true;
  }

  // After `.func`: its return and parameter lists, then a body or a ';'.
  bool skip_function() {
    for (uint64_t parens = 0;;) {
      const token t = lx_.next();
      if (t.kind == tok::end) return fail("ends inside a .func declaration");
      if (t.is("(")) ++parens;
      else if (t.is(")") && parens > 0) --parens;
      else if (parens == 0 && t.is(";")) return true;
      else if (parens == 0 && t.is("{")) return skip_block();
    }
  }

  bool entry() {
    token t = lx_.next();
    if (!t.is_name()) return fail("has an .entry without a name");
    kernel_info k;
    k.name = std::string(t.text);
    uint64_t cursor = 0;  // end of the parameter block so far
    t = lx_.next();
    if (t.is("(")) {
      std::vector<token> cur;
      for (;;) {
        t = lx_.next();
        if (t.kind == tok::end) return fail("ends inside the parameters of " + k.name);
        const bool close = t.is(")");
        if (close || t.is(",")) {
          // "()" is a kernel without parameters; an empty slot anywhere else is garbage.
          if (!(close && cur.empty() && k.params.empty()) && !param(cur, &cursor, &k)) {
            return false;
          }
          cur.clear();
          if (close) break;
          continue;
        }
        if (t.is("(") || t.is("{") || t.is("}") || t.is(";") || cur.size() >= kMaxParamTokens) {
          return fail("has a malformed parameter list in " + k.name);
        }
        cur.push_back(t);
      }
      t = lx_.next();
    }
    // Performance directives (.maxntid 256, 1, 1 ...) until the body, or a
    // ';' for a declaration, which defines no kernel here.
    for (;; t = lx_.next()) {
      if (t.kind == tok::end || t.is("}")) return fail("ends before the body of " + k.name);
      if (t.is(";")) return true;
      if (t.is("{")) break;
    }
    if (!skip_block()) return false;
    if (!kernel_names_.insert(k.name).second) return fail("defines " + k.name + " twice");
    k.param_bytes = static_cast<uint32_t>(cursor);
    out_->kernels.push_back(std::move(k));
    return true;
  }

  // One `.param` of a kernel, placed at the next multiple of its alignment
  // (counted from kParamBankBase).
  bool param(const std::vector<token>& toks, uint64_t* cursor, kernel_info* k) {
    const std::string where = "parameter " + std::to_string(k->params.size()) + " of " + k->name;
    if (toks.empty() || !toks[0].is(".param")) return fail("has a malformed " + where);
    uint64_t align = 0, elem = 0, count = 1;
    bool after_ptr = false, named = false;
    for (size_t i = 1; i < toks.size(); ++i) {
      const token& t = toks[i];
      uint64_t n = 0;
      if (t.is(".align")) {
        if (i + 1 >= toks.size() || !parse_uint(toks[i + 1].text, &n)) {
          return fail("has a bad .align in " + where);
        }
        ++i;
        // After .ptr, .align describes the pointee, not the parameter.
        if (!after_ptr) align = n;
      } else if (t.is(".ptr")) {
        after_ptr = true;
      } else if (after_ptr && is_state_space(t.text)) {
        // the pointee's state space: no bearing on the layout
      } else if (type_size(t.text) != 0 || is_opaque_type(t.text)) {
        if (elem != 0) return fail("has two types in " + where);
        elem = is_opaque_type(t.text) ? 8 : type_size(t.text);
      } else if (t.is_name() && !named) {
        named = true;
      } else if (t.is("[") && named && i + 2 < toks.size() && parse_uint(toks[i + 1].text, &n) &&
                 n > 0 && toks[i + 2].is("]")) {
        count = capped_mul(count, n);
        i += 2;
      } else {
        return fail("has '" + std::string(t.text) + "' where it was not expected in " + where);
      }
    }
    if (elem == 0 || !named) return fail("lacks a type or a name in " + where);
    if (align == 0) align = elem;
    if ((align & (align - 1)) != 0 || align > 4096) return fail("has a bad alignment in " + where);
    const uint64_t size = capped_mul(elem, count);
    const uint64_t offset =
        (kParamBankBase + *cursor + align - 1) / align * align - kParamBankBase;
    if (size > kMaxParamBytes || offset + size > kMaxParamBytes) {
      return fail("declares more than " + std::to_string(kMaxParamBytes) +
                  " bytes of parameters in " + k->name);
    }
    k->params.push_back({static_cast<uint32_t>(offset), static_cast<uint32_t>(size)});
    *cursor = offset + size;
    return true;
  }

  // After `.global` or `.const`: qualifiers, a type, then one or more
  // declarators (name, dimensions, initializer) up to the ';'.
  bool variable(bool constant, bool is_extern) {
    uint64_t elem = 0, vec = 1;
    bool data = true;
    token t = lx_.next();
    for (; !t.is_name(); t = lx_.next()) {
      uint64_t n = 0;
      if (t.is(".attribute")) {  // .attribute(.managed)
        if (!lx_.next().is("(")) return fail("has a malformed .attribute");
        do {
          t = lx_.next();
          if (t.kind == tok::end || t.is(";")) return fail("has a malformed .attribute");
        } while (!t.is(")"));
      } else if (t.is(".align")) {
        if (!parse_uint(lx_.next().text, &n)) return fail("has a bad .align on a variable");
      } else if (t.is(".v2") || t.is(".v4") || t.is(".v8")) {
        vec = static_cast<uint64_t>(t.text[2] - '0');
      } else if (type_size(t.text) != 0 && elem == 0) {
        elem = type_size(t.text);
      } else if (is_opaque_type(t.text) && elem == 0) {
        elem = 8;
        data = false;
      } else {
        return fail("has '" + std::string(t.text) + "' where a variable's type was expected");
      }
    }
    if (elem == 0) return fail("declares variable " + std::string(t.text) + " without a type");
    for (;;) {  // t is the declarator's name
      global_info g;
      g.name = std::string(t.text);
      g.constant = constant;
      uint64_t count = 1;
      bool unsized = false;
      t = lx_.next();
      for (bool first = true; t.is("["); first = false) {
        t = lx_.next();
        uint64_t n = 0;
        if (t.is("]") && first) {
          unsized = true;  // x[] = {...}: the initializer says how many
        } else if (parse_uint(t.text, &n) && lx_.next().is("]")) {
          count = capped_mul(count, n);
        } else {
          return fail("has bad dimensions on variable " + g.name);
        }
        t = lx_.next();
      }
      uint64_t elements = 0;
      if (t.is("=") && !initializer(&elements, &t)) return false;
      if (unsized) count = capped_mul(count, elements);
      g.size = capped_mul(capped_mul(elem, vec), count);
      if (g.size > kSizeCap) return fail("declares variable " + g.name + " larger than 1 TiB");
      if (data && !is_extern) {
        if (!global_names_.insert(g.name).second) return fail("defines " + g.name + " twice");
        out_->globals.push_back(std::move(g));
      }
      if (t.is(";")) return true;
      if (!t.is(",")) return fail("has a malformed declaration of " + g.name);
      t = lx_.next();
      if (!t.is_name()) return fail("has a malformed variable list");
    }
  }

  // After '=': skips the initializer; `elements` counts its outermost
  // braces' items (for x[] = {...}); `t` becomes the ',' or ';' after it.
  bool initializer(uint64_t* elements, token* t) {
    uint64_t depth = 0, commas = 0;
    bool any = false;
    for (;;) {
      *t = lx_.next();
      if (t->kind == tok::end) return fail("ends inside a variable's initializer");
      if (depth == 0 && (t->is(",") || t->is(";"))) break;
      if (t->is("{") || t->is("(")) {
        if (depth == 1) any = true;
        ++depth;
      } else if (t->is("}") || t->is(")")) {
        if (depth == 0) return fail("has an unbalanced initializer");
        --depth;
      } else if (depth == 1) {
        if (t->is(",")) ++commas;
        else any = true;
      }
    }
    *elements = any ? commas + 1 : 0;
    return true;
  }

  lexer lx_;
  module_info* out_;
  std::string* why_;
  std::unordered_set<std::string> kernel_names_;
  std::unordered_set<std::string> global_names_;
};

}  // namespace

bool parse_ptx(std::string_view text, module_info* out, std::string* why) {
  module_info info;
  std::string reason;
  if (!parser(text, &info, &reason).run()) {
    if (why) *why = std::move(reason);
    return false;
  }
  *out = std::move(info);
  return true;
}

}  // namespace vgpu::fatbin
