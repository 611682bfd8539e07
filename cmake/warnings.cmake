# Warnings are errors everywhere in our own code.
add_compile_options(
  -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wpointer-arith -Wcast-qual
  -Wstrict-prototypes -Wmissing-prototypes -Wvla -Wnull-dereference
  -Wimplicit-fallthrough -Wundef -fstack-protector-strong)
if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
  add_compile_options(-Wlogical-op -Wduplicated-cond -Wduplicated-branches)
endif()
if(NOT HK_SANITIZE AND NOT HK_FUZZ AND NOT CMAKE_BUILD_TYPE STREQUAL "Debug")
  add_compile_definitions(_FORTIFY_SOURCE=2)
endif()
add_link_options(-Wl,-z,relro,-z,now,-z,noexecstack)
