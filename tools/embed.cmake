# embed.cmake - turns a rule file into a C source defining SYM_text and SYM_size (cmake -DIN=... -DOUT=... -DSYM=... -P).
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR size "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" body "${body}")
get_filename_component(name ${IN} NAME)
file(WRITE ${OUT} "/* Generated from rules/${name} at build time; do not edit. */\n#include <stddef.h>\nconst char ${SYM}_text[] = {\n${body}0x00};\nconst size_t ${SYM}_size = ${size};\n")
