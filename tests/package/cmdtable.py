# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""What the C sources say caelumctl's commands and caelum.json's keys are, so that the man
pages and the bash completion are checked against them rather than against a copy."""
import os
import re

USER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "user")
SRC = os.path.join(USER, "ctl")

_ENTRY = re.compile(r'\{\s*"([a-z_-]+)"\s*,\s*(\w+)\s*\}')
_FUNC = re.compile(r'^int (do_\w+)\(int argc, char \*\*argv\)\n\{(.*?)^\}', re.M | re.S)
_TABLE = re.compile(r'static const struct cmd \w+\[\] = \{(.*?)\};', re.S)


def _read(name):
    """A source file by name, wherever it lives under user/ (user/<role>/NAME)."""
    for root, _, names in os.walk(USER):
        if name in names:
            with open(os.path.join(root, name)) as f:
                return f.read()
    raise AssertionError(f"no {name} under user/")


def _sources():
    return [n for n in sorted(os.listdir(SRC))
            if n == "caelumctl.c" or (n.startswith("ctl_") and n.endswith(".c"))]


def objects():
    """{object: handler} from the objects[] table of caelumctl.c."""
    m = re.search(r'static const struct cmd objects\[\] = \{(.*?)\};', _read("caelumctl.c"), re.S)
    if not m:
        raise AssertionError("no objects[] table in user/ctl/caelumctl.c")
    return dict(_ENTRY.findall(m.group(1)))


def commands():
    """{object: [command, ...]} for each object whose handler has a struct cmd table."""
    bodies = {}
    for name in _sources():
        for fn, body in _FUNC.findall(_read(name)):
            bodies[fn] = body
    out = {}
    for obj, fn in objects().items():
        if obj == "help":
            continue
        body = bodies.get(fn)
        if body is None:
            raise AssertionError(f"handler {fn} of object '{obj}' not found in user/ctl/ctl*.c")
        t = _TABLE.search(body)
        out[obj] = [c for c, _ in _ENTRY.findall(t.group(1))] if t else []
    return out


def _key_list(text, anchor):
    m = re.search(re.escape(anchor) + r'\s*=\s*\{(.*?)\};', text, re.S)
    if not m:
        raise AssertionError(f"no {anchor} in the sources")
    return re.findall(r'"([a-z_]+)"', m.group(1))


def config_keys():
    """Top-level caelum.json keys (config.c config_keys[])."""
    return _key_list(_read("config.c"), "static const char *const config_keys[]")


def mcp_keys():
    """Keys of caelum.json "mcp" beyond a listener's (config.c parse_mcp extra[])."""
    m = re.search(r'static void parse_mcp\(.*?extra\[\]\s*=\s*\{(.*?)\};', _read("config.c"), re.S)
    if not m:
        raise AssertionError("no extra[] in config.c parse_mcp")
    return re.findall(r'"([a-z_]+)"', m.group(1))


def spec_keys():
    """Top-level keys of a service spec (spec.c) and of a database spec (dbspec.c)."""
    return (_key_list(_read("spec.c"), "static const char *const spec_keys[]"),
            _key_list(_read("dbspec.c"), "static const char *const db_keys[]"))


def resource_keys():
    """Keys of "capacity" (capacity.c capacity_parse) and of a spec's "resources"
    (resources_parse): nested keys, so the page must name them somewhere."""
    text = _read("capacity.c")
    cap = re.search(r'void capacity_parse\(.*?keys\[\]\s*=\s*\{(.*?)\};', text, re.S)
    res = re.search(r'void resources_parse\(.*?keys\[\]\s*=\s*\{(.*?)\};', text, re.S)
    if not cap or not res:
        raise AssertionError("no keys[] in capacity_parse/resources_parse")
    return (re.findall(r'"([a-z_]+)"', cap.group(1)), re.findall(r'"([a-z_]+)"', res.group(1)))
