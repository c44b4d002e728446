# mk/lua-include.awk - assemble one Redis script of queue/lua/: every line
# "--#include NAME" is replaced by the snippet queue/lua/lib/NAME.lua (a
# shared helper such as kp() or maybe_done()); every other line is kept.
# Snippets do not include others.  The Makefile writes the result to
# $(BUILD)/lua/<script>.lua, which is what scripts/embed.c puts in the binaries
# and what tests/integration/test_lua_scripts.py loads.
#   awk -v lib=queue/lua/lib -f mk/lua-include.awk queue/lua/finish.lua
/^--#include / {
    f = lib "/" $2 ".lua"
    n = 0
    while ((getline line < f) > 0) {
        print line
        n++
    }
    close(f)
    if (n == 0) {
        print "lua-include: " FILENAME ": no snippet " f > "/dev/stderr"
        exit 1
    }
    next
}
{ print }
