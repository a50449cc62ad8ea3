# The cubin reader of the reference executor (actors/executor/fatbin/cubin.*),
# on real nvcc output made here at build time from unit/cubin_samples.cu:
#
#   samples_ptx.fatbin        PTX only (compute_90): what the PTX path reads
#   samples_sm90.fatbin       one sm_90 cubin, no PTX, uncompressed
#   samples_sm90_lz4.fatbin   the same, LZ4-compressed (-Xfatbin -compress-all)
#   samples_sm90_zstd.fatbin  the same, zstd-compressed (unreadable here)
#   samples_multi.fatbin      sm_75, sm_90 and sm_120 cubins, no PTX
#   samples_no90.fatbin       sm_75 and sm_120 cubins, no PTX
#   samples_rdc_ptx.fatbin / samples_rdc.fatbin  -rdc=true: PTX only / an
#                             sm_90 relocatable cubin only
#   samples_sm90.cubin        the bare ELF cubin, for the malformed-image tests
set(VGPU_CUBIN_SAMPLES_SRC ${CMAKE_CURRENT_SOURCE_DIR}/unit/cubin_samples.cu)
set(VGPU_CUBIN_SAMPLES_DIR ${CMAKE_CURRENT_BINARY_DIR}/cubin_samples)
set(VGPU_CUBIN_SAMPLES "")
function(vgpu_cubin_sample name)
  set(out ${VGPU_CUBIN_SAMPLES_DIR}/${name})
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${VGPU_CUBIN_SAMPLES_DIR}
    COMMAND ${CUDAToolkit_NVCC_EXECUTABLE} ${ARGN} -o ${out} ${VGPU_CUBIN_SAMPLES_SRC}
    DEPENDS ${VGPU_CUBIN_SAMPLES_SRC}
    COMMENT "nvcc: cubin sample ${name}"
    VERBATIM)
  set(VGPU_CUBIN_SAMPLES ${VGPU_CUBIN_SAMPLES} ${out} PARENT_SCOPE)
endfunction()
vgpu_cubin_sample(samples_ptx.fatbin -fatbin --no-compress -gencode arch=compute_90,code=compute_90)
vgpu_cubin_sample(samples_sm90.fatbin -fatbin --no-compress -gencode arch=compute_90,code=sm_90)
vgpu_cubin_sample(samples_sm90_lz4.fatbin -fatbin -gencode arch=compute_90,code=sm_90
                  -Xfatbin=-compress-all -compress-mode=speed)
vgpu_cubin_sample(samples_sm90_zstd.fatbin -fatbin -gencode arch=compute_90,code=sm_90
                  -Xfatbin=-compress-all -compress-mode=size)
vgpu_cubin_sample(samples_multi.fatbin -fatbin --no-compress -gencode arch=compute_75,code=sm_75
                  -gencode arch=compute_90,code=sm_90 -gencode arch=compute_120,code=sm_120)
vgpu_cubin_sample(samples_no90.fatbin -fatbin --no-compress -gencode arch=compute_75,code=sm_75
                  -gencode arch=compute_120,code=sm_120)
vgpu_cubin_sample(samples_rdc_ptx.fatbin -fatbin -rdc=true --no-compress
                  -gencode arch=compute_90,code=compute_90)
vgpu_cubin_sample(samples_rdc.fatbin -fatbin -rdc=true --no-compress -gencode arch=compute_90,code=sm_90)
vgpu_cubin_sample(samples_sm90.cubin -cubin -arch=sm_90)
add_custom_target(vgpu_cubin_samples DEPENDS ${VGPU_CUBIN_SAMPLES})

add_executable(vgpu_cubin_tests
  unit/cubin_test.cpp)
target_include_directories(vgpu_cubin_tests PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(vgpu_cubin_tests PRIVATE vgpu_fatbin GTest::gtest_main)
target_compile_options(vgpu_cubin_tests PRIVATE ${VGPU_WARNINGS})
target_compile_definitions(vgpu_cubin_tests PRIVATE
  VGPU_CUBIN_SAMPLES_DIR="${VGPU_CUBIN_SAMPLES_DIR}")
add_dependencies(vgpu_cubin_tests vgpu_cubin_samples)
gtest_discover_tests(vgpu_cubin_tests
  TEST_PREFIX "unit."
  PROPERTIES TIMEOUT 300)
