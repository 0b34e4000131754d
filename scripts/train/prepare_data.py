# Extracts the plain English training text from two Debian packages into a folder (default .carry/train-data,
# git-ignored, carried to the GPU machine): kjv.txt (bible-kjv-text through the `bible` reader of bible-kjv,
# one verse per line, references stripped) and handbook.txt (debian-handbook en-US HTML: paragraph, list,
# heading and definition text of six words or more; code and preformatted blocks dropped).
# Usage: python3 scripts/train/prepare_data.py [OUT_DIR]   (needs: apt-get install bible-kjv debian-handbook)
import glob
import html.parser
import os
import re
import subprocess
import sys

HANDBOOK = "/usr/share/doc/debian-handbook/html/en-US"


class _Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.out, self.skip, self.buf = [], 0, []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "pre", "code"):
            self.skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style", "pre", "code"):
            self.skip = max(0, self.skip - 1)
        if tag in ("p", "li", "h1", "h2", "h3", "dd", "title"):
            txt = re.sub(r"\s+", " ", "".join(self.buf)).strip()
            if len(txt.split()) >= 6:
                self.out.append(txt)
            self.buf = []

    def handle_data(self, data):
        if not self.skip:
            self.buf.append(data)


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else ".carry/train-data"
    os.makedirs(out, exist_ok=True)
    raw = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], check=True, capture_output=True, text=True).stdout
    verses = [re.sub(r"^[0-9A-Za-z]+[0-9]+:[0-9]+ ", "", l) for l in raw.splitlines()]
    write_atomic(os.path.join(out, "kjv.txt"), "\n".join(verses) + "\n")
    lines = []
    for fn in sorted(glob.glob(os.path.join(HANDBOOK, "*.html"))):
        p = _Text()
        with open(fn, encoding="utf-8", errors="replace") as f:
            p.feed(f.read())
        lines += p.out
    if not lines:
        sys.exit(f"prepare_data: no text found under {HANDBOOK} (is debian-handbook installed?)")
    write_atomic(os.path.join(out, "handbook.txt"), "\n".join(lines) + "\n")
    print(f"{out}: kjv.txt {len(verses)} verses, handbook.txt {len(lines)} paragraphs")


if __name__ == "__main__":
    main()
