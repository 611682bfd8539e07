# hk_test(NAME SOURCES src... LIBS lib... [LABELS l...] [TIMEOUT s])
# Builds one unit-test program and registers it with CTest. With HK_VALGRIND
# every test runs under memcheck and fails on any error or leak.
function(hk_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES} ${CMAKE_SOURCE_DIR}/tests/test.c)
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  target_link_libraries(${name} PRIVATE ${T_LIBS})
  if(HK_VALGRIND)
    add_test(NAME ${name} COMMAND valgrind --quiet --error-exitcode=99
      --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect
      --track-fds=no $<TARGET_FILE:${name}>)
  else()
    add_test(NAME ${name} COMMAND ${name})
  endif()
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT})
  # Integration tests share the mail server's mailboxes (a delivery by one
  # would show up in another's counts): one at a time.
  if("integration" IN_LIST T_LABELS)
    set_tests_properties(${name} PROPERTIES RESOURCE_LOCK eas_peer)
  endif()
endfunction()
