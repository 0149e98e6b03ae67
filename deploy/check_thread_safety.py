#!/usr/bin/python3
"""Clang's thread-safety analysis over every Tandem source of a build tree.

    deploy/check_thread_safety.py BUILD_DIR

Reads BUILD_DIR/compile_commands.json (the main, GCC-built tree), and runs
clang++-14 -fsyntax-only -Wthread-safety -Werror=thread-safety on each of
the project's own .cc files (generated protobuf code left out), two at a
time. Syntax only: LibTorch translation units are parsed, not compiled, so
the whole tree takes minutes, and the ABSL_GUARDED_BY / ABSL_LOCKS_EXCLUDED
/ ABSL_EXCLUSIVE_LOCKS_REQUIRED annotations are checked everywhere. Exits 1
and prints the warnings when any is broken.
"""
import concurrent.futures
import json
import os
import shlex
import subprocess
import sys

# GCC flags clang does not take.
DROP = {"-fno-gnu-unique"}


def clang_command(entry):
    args = shlex.split(entry["command"])
    out = ["clang++-14", "-fsyntax-only", "-Wthread-safety",
           "-Werror=thread-safety", "-Wno-unknown-warning-option"]
    skip = False
    for arg in args[1:]:
        if skip:
            skip = False
            continue
        if arg in ("-o", "-MF", "-MT", "-c"):
            skip = arg != "-c"
            continue
        if arg in ("-MD", "-Werror") or arg in DROP:
            continue
        out.append(arg)
    return out


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(build, "compile_commands.json")) as f:
        entries = json.load(f)
    own = [e for e in entries
           if e["file"].startswith(root + os.sep)
           and not e["file"].startswith(os.path.abspath(build) + os.sep)
           and "/build" not in e["file"][len(root):]]

    def check(entry):
        done = subprocess.run(clang_command(entry), cwd=entry["directory"],
                              capture_output=True, text=True)
        return entry["file"], done.returncode, done.stderr

    failed = 0
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for n, (path, code, err) in enumerate(pool.map(check, own), 1):
            if code != 0:
                failed += 1
                print(f"{os.path.relpath(path, root)}:\n{err}")
            print(f"thread-safety: {n}/{len(own)} {os.path.relpath(path, root)}"
                  + (" FAILED" if code else ""), file=sys.stderr)
    print(f"thread-safety: {len(own) - failed} of {len(own)} files clean")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
