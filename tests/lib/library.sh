# library.sh: where the tests of the shared library (tests/library/) find what make built.
# `make check-unit` sets these; run by hand they fall back to a plain `make && make stage`.
QU_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
QU_BUILD=${QU_BUILD:-$QU_ROOT/build}
QU_STAGE=${QU_STAGE:-$QU_BUILD/stage}          # a `make install DESTDIR=$QU_STAGE`
QU_PREFIX=${QU_PREFIX:-/usr/local}
QU_STAGE_OPT=${QU_STAGE_OPT:-$QU_BUILD/stage-opt}  # the same, PREFIX=$QU_OPT_PREFIX
QU_OPT_PREFIX=${QU_OPT_PREFIX:-/opt/qemu-upgrade}
QU_LIBDIR=${QU_LIBDIR:-$QU_PREFIX/lib}
QU_INCLUDEDIR=${QU_INCLUDEDIR:-$QU_PREFIX/include}
QU_SONAME=${QU_SONAME:-libqemu-upgrade.so.0}
QU_SANITIZE=${QU_SANITIZE:-}                    # an ASan build's programs need its flags too
CC=${CC:-cc}
CXX=${CXX:-c++}
QU_HEADER=$QU_ROOT/include/qemu-upgrade.h

QU_TMP=$(mktemp -d)
trap 'rm -rf "$QU_TMP"' EXIT

# dyn_tag FILE TAG: the values of one dynamic-section tag (NEEDED, SONAME, RUNPATH), one a line.
dyn_tag() { readelf -d "$1" | sed -n "s/.*($2) .*\[\(.*\)\]\$/\1/p"; }
