#!/usr/bin/env python3
"""embed_assets.py OUT.cc ROOT FILE...: writes the files (under ROOT) as the console's assets."""
import os
import sys

TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
         ".txt": "text/plain; charset=utf-8"}


def main():
    out, root, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    lines = ['#include "services/console/assets.h"', "", "namespace converge::console {", "namespace {", ""]
    table = []
    for i, f in enumerate(sorted(files)):
        rel = os.path.relpath(f, root)
        path = "/" if rel == "index.html" else "/" + rel
        data = open(f, "rb").read()
        body = ",".join(str(b) for b in data)
        lines.append(f"const unsigned char kData{i}[] = {{{body},0}};")
        ctype = TYPES.get(os.path.splitext(f)[1], "application/octet-stream")
        table.append(f'    {{"{path}", "{ctype}", kData{i}, {len(data)}}},')
    lines += ["", "const Asset kAssets[] = {"] + table + ["};", "", "}  // namespace", "",
              "const Asset* FindAsset(absl::string_view path) {",
              "  for (const Asset& a : kAssets) {",
              "    if (path == a.path) return &a;",
              "  }",
              "  return nullptr;",
              "}", "", "}  // namespace converge::console", ""]
    with open(out, "w") as o:
        o.write("\n".join(lines))


if __name__ == "__main__":
    main()
