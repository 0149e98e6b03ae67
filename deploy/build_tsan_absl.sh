#!/usr/bin/env bash
# Abseil built with ThreadSanitizer, for deploy/sanitize.sh's TSan tree.
#
#   deploy/build_tsan_absl.sh DIR     # installs into DIR/prefix
#
# Debian's libabsl is not instrumented: TSan cannot see absl::Mutex (every
# lock in Tandem), so against it every guarded access reads as a race. This
# builds Debian's own source of the installed libabsl-dev version with clang
# and -fsanitize=thread. The source comes through apt (deb-src for the same
# archives as the system's deb entries) with apt state kept under DIR, so the
# system's package lists are not touched. Does nothing when DIR/prefix
# already holds that version. Exits 77 when the source cannot be fetched.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$(realpath -m "$1")
prefix=$dir/prefix
version=$(dpkg-query -W -f='${Version}' libabsl-dev)
if [ -f "$prefix/VERSION" ] && [ "$(cat "$prefix/VERSION")" = "$version" ]; then
  echo "tsan-absl: Abseil $version with TSan already in $prefix"
  exit 0
fi

# Private apt configuration: the system's archives as deb-src.
apt_dir=$dir/apt
rm -rf "$apt_dir"
mkdir -p "$apt_dir/sources.list.d" "$apt_dir/lists/partial" \
  "$apt_dir/cache/archives/partial"
if [ -f /etc/apt/sources.list ]; then
  sed -n 's/^deb \(.*\)/deb-src \1/p' /etc/apt/sources.list >"$apt_dir/sources.list"
else
  : >"$apt_dir/sources.list"
fi
for f in /etc/apt/sources.list.d/*.sources; do
  [ -e "$f" ] || continue
  sed 's/^Types:.*$/Types: deb-src/' "$f" >"$apt_dir/sources.list.d/$(basename "$f")"
done
for f in /etc/apt/sources.list.d/*.list; do
  [ -e "$f" ] || continue
  sed -n 's/^deb \(.*\)/deb-src \1/p' "$f" >"$apt_dir/sources.list.d/$(basename "$f")"
done
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list"
          -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
          -o "Dir::State::Lists=$apt_dir/lists"
          -o "Dir::Cache=$apt_dir/cache"
          -o "APT::Sandbox::User=root" -qq)

echo "tsan-absl: fetching Debian's source of abseil $version"
src=$dir/src
rm -rf "$src" "$dir/download"
mkdir -p "$dir/download"
if ! apt-get "${apt_opts[@]}" update >"$dir/apt.log" 2>&1 ||
   ! (cd "$dir/download" &&
      apt-get "${apt_opts[@]}" source --download-only "abseil=$version" \
        >>"$dir/apt.log" 2>&1); then
  echo "tsan-absl: cannot fetch the source of abseil $version (see $dir/apt.log)" >&2
  exit 77
fi
dpkg-source -x "$dir"/download/abseil_*.dsc "$src" >/dev/null

echo "tsan-absl: building it with clang and -fsanitize=thread (a few minutes)"
cmake -S "$src" -B "$dir/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCMAKE_C_FLAGS=-fsanitize=thread -DCMAKE_CXX_FLAGS=-fsanitize=thread \
  -DCMAKE_CXX_STANDARD=17 -DABSL_PROPAGATE_CXX_STD=ON -DBUILD_TESTING=OFF \
  -DABSL_BUILD_TESTING=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
  -DBUILD_SHARED_LIBS=OFF -DCMAKE_INSTALL_PREFIX="$prefix" >"$dir/cmake.log"
cmake --build "$dir/build" -j "${TANDEM_JOBS:-$(nproc)}" >"$dir/build.log"
cmake --install "$dir/build" >/dev/null
echo "$version" >"$prefix/VERSION"
rm -rf "$src" "$dir/download" "$dir/build" "$apt_dir"
echo "tsan-absl: installed in $prefix"
