#!/usr/bin/env bash
# Size check for libkgr/ (issue 20): no source file over 600 lines and no
# function over 80 lines, unless scripts/size-allowlist.txt names it with a
# reason. Exits 1 on an offender the allowlist does not name (or an entry
# without a reason), 0 otherwise; stale allowlist entries are reported but
# do not fail.
#
# Functions are found by a brace-matching heuristic over .cc and .h files
# (comments and literals stripped): a top-level `{` whose head has balanced
# parentheses and no `=` before them opens a function, and its length runs
# from the head's first line to the matching `}`. Functions in test files
# (*_test.cc, *_test.h, *_fixture.h) are listed separately and never fail.
#
# Usage: scripts/check-sizes.sh [--root DIR] [--allowlist FILE]
#        [--max-file N] [--max-function N]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
allowlist=""
max_file=600
max_function=80
while [[ $# -gt 0 ]]; do
  case "$1" in
    --root) root="$2"; shift 2 ;;
    --allowlist) allowlist="$2"; shift 2 ;;
    --max-file) max_file="$2"; shift 2 ;;
    --max-function) max_function="$2"; shift 2 ;;
    *) echo "check-sizes: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[[ -n "$allowlist" ]] || allowlist="$root/scripts/size-allowlist.txt"

exec /usr/bin/python3 - "$root" "$allowlist" "$max_file" "$max_function" <<'PY'
import os
import re
import sys

root, allowlist_path, max_file, max_function = sys.argv[1:5]
max_file, max_function = int(max_file), int(max_function)
SOURCE_EXT = (".cc", ".h")


def is_test(path):
    base = os.path.basename(path)
    return (base.endswith("_test.cc") or base.endswith("_test.h")
            or base.endswith("_fixture.h"))


def strip(text):
    """Blanks comments and string/char literals, keeping newlines."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        at_line_start = text[text.rfind("\n", 0, i) + 1:i].strip() == ""
        if c == "#" and at_line_start:  # preprocessor line(s)
            j = i
            while True:
                j = text.find("\n", j)
                if j < 0 or text[j - 1] != "\\":
                    break
                j += 1
            j = n if j < 0 else j
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c == 'R' and text.startswith('R"', i) and (
                i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            k = text.find("(", i + 2)
            delim = ")" + text[i + 2:k] + '"'
            j = text.find(delim, k)
            j = n if j < 0 else j + len(delim)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif c in "\"'":
            if c == "'" and i > 0 and text[i - 1].isalnum():
                out.append(c)  # digit separator (1'000)
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(text):
    """Yields (name, first_line, last_line) of each top-level function."""
    s = strip(text)
    stack = []  # kinds: ns, class, func, other
    head, head_line = "", None
    line = 1
    for ch in s:
        if ch == "\n":
            line += 1
        in_func = any(k[0] == "func" for k in stack)
        if in_func:
            if ch == "{":
                stack.append(("inner", line, ""))
            elif ch == "}" and stack:
                kind, start, name = stack.pop()
                if kind == "func":
                    yield name, start, line
                    head, head_line = "", None
            continue
        if ch == "{":
            h = head.strip()
            kind, name = "other", ""
            if re.search(r"\bnamespace\b|\bextern\s*\"\"", h):
                kind = "ns"
            elif "(" in h and h.count("(") == h.count(")"):
                before = h[:h.index("(")]
                if "=" not in before.replace("operator", "") or re.search(
                        r"operator\s*[=!<>]*=?\s*$", before):
                    kind = "func"
                    m = re.findall(r"[~\w:]+(?:\s*operator\s*\S+)?", before)
                    name = m[-1] if m else before.strip()
            elif re.search(r"\b(class|struct|union|enum)\b", h) and "=" not in h:
                kind = "class"
            if kind == "other":
                head += ch
                stack.append(("other", line, ""))
                continue
            stack.append((kind, head_line or line, name))
            head, head_line = "", None
        elif ch == "}":
            if stack:
                kind, _, _ = stack.pop()
                if kind == "other":
                    head += ch
                    continue
            head, head_line = "", None
        elif ch == ";":
            if stack and stack[-1][0] == "other":
                head += ch
            else:
                head, head_line = "", None
        else:
            if head_line is None and not ch.isspace():
                head_line = line
            head += ch
            # an access specifier ends a head
            if ch == ":" and re.search(r"\b(public|private|protected)\s*:$",
                                       head):
                head, head_line = "", None


def load_allowlist(path):
    entries = {}
    problems = []
    if not os.path.exists(path):
        return entries, problems
    with open(path) as f:
        for num, raw in enumerate(f, 1):
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            parts = [p.strip() for p in text.split("|", 2)]
            if len(parts) < 3 or not parts[2]:
                problems.append(f"{path}:{num}: want 'file|path|reason' or "
                                f"'function|path:name|reason', with a reason")
                continue
            entries[(parts[0], parts[1])] = parts[2]
    return entries, problems


entries, problems = load_allowlist(allowlist_path)
used = set()
offenders, allowed, test_funcs = [], [], []
libkgr = os.path.join(root, "libkgr")
for dirpath, dirnames, filenames in os.walk(libkgr):
    dirnames.sort()
    for fn in sorted(filenames):
        if not fn.endswith(SOURCE_EXT):
            continue
        full = os.path.join(dirpath, fn)
        rel = os.path.relpath(full, root)
        with open(full, encoding="utf-8", errors="replace") as f:
            text = f.read()
        lines = text.count("\n")
        if lines > max_file:
            key = ("file", rel)
            row = f"{rel}: {lines} lines (over {max_file})"
            if key in entries:
                used.add(key)
                allowed.append(f"{row} -- allowlisted: {entries[key]}")
            else:
                offenders.append(row)
        for name, first, last in functions(text):
            length = last - first + 1
            if length <= max_function:
                continue
            row = f"{rel}:{first}: {name}: {length} lines (over {max_function})"
            if is_test(rel):
                test_funcs.append(row)
                continue
            key = ("function", f"{rel}:{name}")
            if key in entries:
                used.add(key)
                allowed.append(f"{row} -- allowlisted: {entries[key]}")
            else:
                offenders.append(row)

for row in allowed:
    print("allowed  " + row)
for row in test_funcs:
    print("test     " + row)
for key in sorted(set(entries) - used):
    print(f"stale    allowlist entry {key[0]}|{key[1]} matches nothing; remove it")
for p in problems:
    print("error    " + p)
for row in offenders:
    print("OFFENDER " + row)
if offenders or problems:
    print(f"check-sizes: {len(offenders)} offender(s) not in {allowlist_path}; "
          "split them, or allowlist with a reason why they are clearer whole")
    sys.exit(1)
print(f"check-sizes: ok ({len(allowed)} allowlisted)")
PY
