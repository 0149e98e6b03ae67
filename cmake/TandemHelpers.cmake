# Small helpers shared by the folders' CMakeLists.

# Warnings for our own targets, -Werror on request, and sanitizers.
function(tandem_configure_warnings_and_sanitizers)
  set(_flags -Wall -Wextra -Wno-unused-parameter)
  if(TANDEM_WERROR)
    list(APPEND _flags -Werror)
  endif()
  set(TANDEM_WARNING_FLAGS ${_flags} PARENT_SCOPE)
  if(TANDEM_SANITIZE)
    if(NOT TANDEM_SANITIZE MATCHES "^(address,undefined|address|undefined|thread)$")
      message(FATAL_ERROR "TANDEM_SANITIZE must be 'address,undefined' or 'thread'")
    endif()
    add_compile_options(-fsanitize=${TANDEM_SANITIZE} -fno-omit-frame-pointer)
    add_link_options(-fsanitize=${TANDEM_SANITIZE})
  endif()
endfunction()

# tandem_library(NAME name SRCS ... [PUBLIC_DEPS ...] [PRIVATE_DEPS ...])
# Defines target tandem_<name> with alias tandem::<name>. Includes resolve from
# the repository root ("common/status_macros.h").
function(tandem_library)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(tandem_${ARG_NAME} ${ARG_SRCS})
  add_library(tandem::${ARG_NAME} ALIAS tandem_${ARG_NAME})
  target_include_directories(tandem_${ARG_NAME} PUBLIC
      ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/proto)
  target_link_libraries(tandem_${ARG_NAME}
      PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  target_compile_options(tandem_${ARG_NAME} PRIVATE ${TANDEM_WARNING_FLAGS})
endfunction()

# tandem_test(NAME name SRCS ... DEPS ... [LABELS unit|integration|slow|gpu]
#             [ENVIRONMENT VAR=value ...] [TIMEOUT seconds])
# One GoogleTest binary registered as one ctest test (so labels and fixtures
# apply to the whole binary).
function(tandem_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SRCS;DEPS;LABELS;ENVIRONMENT" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gmock GTest::gtest_main)
  target_compile_options(${ARG_NAME} PRIVATE ${TANDEM_WARNING_FLAGS})
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME})
  set_tests_properties(${ARG_NAME} PROPERTIES
      LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
      ENVIRONMENT "TANDEM_MODEL_REPOSITORY=${PROJECT_BINARY_DIR}/model_repository;TANDEM_SOURCE_DIR=${PROJECT_SOURCE_DIR};${ARG_ENVIRONMENT}"
      SKIP_RETURN_CODE 77
      # GTEST_SKIP exits 0: report such a run as skipped, never as passed.
      SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")
endfunction()
