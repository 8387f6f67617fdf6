"""Port Twisted's own test modules to treadle by the import rule, run them, classify failures.

A check, not part of the suite: it copies Twisted's test modules from the installed Twisted
(the test extra brings it) into a work directory, rewrites their imports by the porting rule
(``twisted.trial`` stays: it is the runner; ``twisted.web.test.requesthelper`` becomes treadle's;
a name treadle lacks becomes a placeholder that fails only the tests using it), runs each
module with pytest, and prints the per-module table of ``classify.py``. Nothing of Twisted's
test code is kept in this repository.

    python tools/twisted_suite/port.py [test_web test_http ...] [--work DIR]
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

TOOL = pathlib.Path(__file__).parent
HERE = pathlib.Path(os.environ.get("TREADLE_SUITE_WORK", "/tmp/treadle-twisted-suite"))
VENV_PY = sys.executable
TW = pathlib.Path(
    subprocess.check_output(
        [VENV_PY, "-c", "import twisted,os;print(os.path.dirname(twisted.__file__))"], text=True
    ).strip()
)
WEB = [
    "test_resource",
    "test_static",
    "test_script",
    "test_util",
    "test_vhost",
    "test_pages",
    "test_web",
    "test_http_headers",
    "test_wsgi",
    "test_proxy",
    "test_httpauth",
    "test_http",
]
CORE = ["test_defer", "test_task"]
HELPERS_WEB = ["_util"]
KEEP = (
    "twisted.trial",
    "twisted.test.test_internet",
    "twisted.internet.test.modulehelpers",
    "twisted.test.proto_helpers",
)
PORTED = set(WEB + CORE + HELPERS_WEB)


def target(mod):
    if mod.startswith(KEEP):
        return mod
    if mod == "twisted.web.test.requesthelper":
        return "treadle.web.test.requesthelper"
    for prefix in ("twisted.web.test.", "twisted.test."):
        if mod.startswith(prefix) and mod[len(prefix) :].split(".")[0] in PORTED:
            return "ported." + mod[len(prefix) :]
    if mod == "twisted" or mod.startswith("twisted."):
        return "treadle" + mod[len("twisted") :]
    return mod


IMPORT = re.compile(r"^(\s*)(from|import)\s+(twisted(?:\.[\w.]+)?)\b", re.M)

import ast


class Guard(ast.NodeTransformer):
    """Turn `from treadle.x import a, b as c` into lookups that leave a placeholder for a missing name."""

    def visit_ImportFrom(self, node):
        if not (node.module or "").startswith("treadle") or node.level:
            return node
        names = [(a.name, a.asname or a.name) for a in node.names]
        if any(n == "*" for n, _ in names):
            return node
        targets = ast.Tuple([ast.Name(asn, ast.Store()) for _, asn in names], ast.Store())
        call = ast.parse(
            f"__import__('ported._imp', fromlist=['x']).names({node.module!r}, {[n for n, _ in names]!r})",
            mode="eval",
        ).body
        return ast.copy_location(ast.Assign([targets], call), node)


def rewrite(src, pkg):
    src = re.sub(
        r"^(\s*)from \.(\w+) import",
        lambda m: f"{m.group(1)}from {pkg}.{m.group(2)} import",
        src,
        flags=re.M,
    )
    src = IMPORT.sub(lambda m: f"{m.group(1)}{m.group(2)} {target(m.group(3))}", src)
    tree = Guard().visit(ast.parse(src))
    ast.fix_missing_locations(tree)
    return ast.unparse(tree)


def build():
    out = HERE / "ported"
    out.mkdir(exist_ok=True)

    def put(name, text):
        tmp = out / f".{name}.{os.getpid()}"
        tmp.write_text(text)
        os.replace(tmp, out / name)

    put("__init__.py", "")
    put("_imp.py", (TOOL / "_imp.py").read_text())
    (HERE / "conftest.py").write_text((TOOL / "harness_conftest.py").read_text())
    for name in WEB + HELPERS_WEB:
        put(f"{name}.py", rewrite((TW / "web/test" / f"{name}.py").read_text(), "twisted.web.test"))
    for name in CORE:
        put(f"{name}.py", rewrite((TW / "test" / f"{name}.py").read_text(), "twisted.test"))
    return out


def run(mods):
    results = {}
    for m in mods:
        xmlp = HERE / f"junit-{m}.xml"
        subprocess.run(
            [
                VENV_PY,
                "-m",
                "pytest",
                f"ported/{m}.py",
                "-q",
                "-p",
                "no:randomly",
                "-p",
                "no:cacheprovider",
                "-o",
                "filterwarnings=",
                "-o",
                "addopts=",
                "--timeout=20",
                f"--junitxml={xmlp}",
                "-x" if False else "-q",
            ],
            cwd=HERE,
            stdout=open(HERE / f"out-{m}.txt", "w"),
            stderr=subprocess.STDOUT,
        )
        root = ET.parse(xmlp).getroot()
        fails = []
        total = passed = skipped = 0
        for tc in root.iter("testcase"):
            total += 1
            bad = tc.find("failure") if tc.find("failure") is not None else tc.find("error")
            if tc.find("skipped") is not None:
                skipped += 1
            elif bad is not None:
                fails.append(
                    (
                        tc.get("classname").split(".")[-1] + "." + tc.get("name"),
                        (bad.get("message") or "")[:300],
                    )
                )
            else:
                passed += 1
        results[m] = dict(total=total, passed=passed, skipped=skipped, fails=fails)
        print(f"{m:20} {passed:4}/{total - skipped:4} pass  ({skipped} skipped)", flush=True)
        for name, msg in fails:
            print(f"    FAIL {name}: {msg[:160]!r}")
        json.dump(results[m], open(HERE / f"results-{m}.json", "w"), indent=1)


if __name__ == "__main__":
    HERE.mkdir(parents=True, exist_ok=True)
    build()
    mods = sys.argv[1:] or WEB + CORE
    run(mods)
    sys.path.insert(0, str(TOOL))
    import classify

    classify.main(mods, HERE)
