# dsv4_warnings(target): -Wall -Wextra -Wpedantic, errors when DSV4_WERROR (CI).
function(dsv4_warnings tgt)
    target_compile_options(${tgt} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic>)
    if(DSV4_WERROR)
        target_compile_options(${tgt} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
    endif()
endfunction()
