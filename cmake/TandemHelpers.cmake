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
#             [ENVIRONMENT VAR=value ...] [TIMEOUT seconds] [RUN_SERIAL])
# One GoogleTest binary; every test case in it is its own ctest test
# (gtest_discover_tests, at ctest time), so a GTEST_SKIP is that case's skip
# and a failure is always that case's failure. TIMEOUT bounds each case.
function(tandem_test)
  cmake_parse_arguments(ARG "RUN_SERIAL" "NAME;TIMEOUT" "SRCS;DEPS;LABELS;ENVIRONMENT" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gmock GTest::gtest_main)
  target_compile_options(${ARG_NAME} PRIVATE ${TANDEM_WARNING_FLAGS})
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  # Test names: "<binary>.<Suite>.<Case>", so `ctest -R <binary>` selects one
  # binary's cases.
  gtest_discover_tests(${ARG_NAME}
      TEST_PREFIX "${ARG_NAME}."
      DISCOVERY_MODE PRE_TEST
      DISCOVERY_TIMEOUT 60)
  # gtest_discover_tests flattens its PROPERTIES into one list, which breaks
  # list values (several labels, an environment of several variables). Set
  # them from a script of our own that ctest runs after the discovery, over
  # the list of discovered tests it leaves in <binary>_TESTS.
  set(_env
      TANDEM_MODEL_REPOSITORY=${PROJECT_BINARY_DIR}/model_repository
      TANDEM_SOURCE_DIR=${PROJECT_SOURCE_DIR}
      ${ARG_ENVIRONMENT})
  set(_serial "")
  if(ARG_RUN_SERIAL)
    set(_serial "RUN_SERIAL TRUE")
  endif()
  set(_script ${CMAKE_CURRENT_BINARY_DIR}/${ARG_NAME}_properties.cmake)
  file(GENERATE OUTPUT ${_script} CONTENT
"foreach(_test IN LISTS ${ARG_NAME}_TESTS)
  set_tests_properties(\"\${_test}\" PROPERTIES
      LABELS \"${ARG_LABELS}\" TIMEOUT ${ARG_TIMEOUT} SKIP_RETURN_CODE 77
      ENVIRONMENT \"${_env}\" ${_serial})
endforeach()
")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${_script})
endfunction()
