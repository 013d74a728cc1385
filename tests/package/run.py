#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""make test-package: the Debian package, its unit, man pages, completion and maintainer
scripts, and caelumd under the unit's capability set passing the port-enforcement tests.

    python3 tests/package/run.py --build build --deb build/caelum_VERSION_ARCH.deb
"""
import argparse
import errno
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import cmdtable  # noqa: E402

ARGS = None
ROOT = None  # the package, extracted
EXPOSURE_MAX = 5.0


def sh(*argv, env=None, check=False):
    p = subprocess.run(argv, capture_output=True, text=True, env=env)
    if check and p.returncode:
        raise AssertionError(f"{' '.join(argv)} exited {p.returncode}:\n{p.stdout}{p.stderr}")
    return p


def rel(path):
    return os.path.join(ROOT, path.lstrip("/"))


def unit_path():
    return rel("/lib/systemd/system/caelumd.service")


def unit_caps():
    with open(unit_path()) as f:
        for line in f:
            if line.startswith("CapabilityBoundingSet="):
                return line.split("=", 1)[1].split()
    raise AssertionError("no CapabilityBoundingSet= in the unit")


def cap_mask(names):
    """The bit mask of capability names, numbered as in <linux/capability.h>."""
    with open("/usr/include/linux/capability.h") as f:
        nums = dict(re.findall(r"^#define (CAP_[A-Z_]+)\s+(\d+)$", f.read(), re.M))
    return sum(1 << int(nums[n]) for n in names)


def man_text(page):
    env = dict(os.environ, MANWIDTH="100", LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="")
    p = sh("man", "--warnings", "-l", page, env=env)
    # Words the formatter hyphenated at a line end are joined again.
    return p, re.sub("\u2010\n *", "", re.sub(r".\x08", "", p.stdout))


class Contents(unittest.TestCase):
    def test_files(self):
        listing = sh("dpkg-deb", "-c", ARGS.deb, check=True).stdout
        paths = {line.split()[-1].lstrip(".") for line in listing.splitlines()}
        for p in ("/usr/sbin/caelumd", "/usr/bin/caelumctl", "/lib/systemd/system/caelumd.service",
                  "/etc/caelum/caelum.json", "/etc/caelum/services.d/", "/etc/caelum/databases.d/",
                  "/usr/share/man/man8/caelumd.8.gz", "/usr/share/man/man8/caelumctl.8.gz",
                  "/usr/share/man/man5/caelum.json.5.gz",
                  "/usr/share/bash-completion/completions/caelumctl",
                  "/usr/share/doc/caelum/README.md.gz", "/usr/share/doc/caelum/copyright",
                  "/usr/share/doc/caelum/examples/services.d/metrics.json"):
            self.assertIn(p, paths)

    def test_binaries_run(self):
        version = re.search(r'CAELUM_VERSION "(.*)"', open(f"{TOP}/user/lib/version.h").read())[1]
        self.assertEqual(sh(rel("/usr/sbin/caelumd"), "-V", check=True).stdout.strip(),
                         f"caelumd {version}")
        self.assertEqual(sh(rel("/usr/bin/caelumctl"), "-V", check=True).stdout.strip(),
                         f"caelumctl {version}")

    def test_conffile_is_the_valid_default(self):
        ctl = sh("dpkg-deb", "--ctrl-tarfile", ARGS.deb)
        self.assertEqual(ctl.returncode, 0)
        conffiles = sh("dpkg-deb", "-I", ARGS.deb, "conffiles", check=True).stdout.split()
        self.assertEqual(conffiles, ["/etc/caelum/caelum.json"])
        p = sh(rel("/usr/bin/caelumctl"), "-c", rel("/etc/caelum/caelum.json"), "check")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_depends_on_the_libraries(self):
        dep = sh("dpkg-deb", "-f", ARGS.deb, "Depends", check=True).stdout
        for lib in ("libsystemd0", "libbpf1", "libjson-c5"):
            self.assertIn(lib, dep)

    def test_lintian_no_errors(self):
        p = sh("lintian", "--no-cfg", "--fail-on", "error", ARGS.deb)
        print(f"\nlintian:\n{p.stdout}{p.stderr}", file=sys.stderr)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertNotRegex(p.stdout, r"(?m)^E: ")


class MaintainerScripts(unittest.TestCase):
    def script(self, name):
        with open(os.path.join(ROOT, "DEBIAN", name)) as f:
            return f.read()

    def test_sh_n(self):
        for name in ("postinst", "prerm", "postrm"):
            p = sh("sh", "-n", os.path.join(ROOT, "DEBIAN", name))
            self.assertEqual(p.returncode, 0, f"{name}: {p.stderr}")

    def test_enable_on_install_restart_on_upgrade(self):
        s = self.script("postinst")
        self.assertIn("deb-systemd-helper enable 'caelumd.service'", s)
        self.assertRegex(s, r'if \[ -n "\$2" \]; then\s+_dh_action=restart')

    def test_stop_only_on_remove_and_keep_a_teardown_kit(self):
        s = self.script("prerm")
        self.assertRegex(s, r'\[ "\$1" = remove \].*\n\s+deb-systemd-invoke stop')
        self.assertNotIn("teardown", s.split("#DEBHELPER#")[0] if "#DEBHELPER#" in s else "")
        self.assertIn('cp /usr/bin/caelumctl "$kit/caelumctl"', s)

    def test_purge_tears_down_and_removes_state(self):
        s = self.script("postrm")
        purge = s[s.index("purge)"):]
        self.assertIn('"$kit/caelumctl" -c "$kit/caelum.json" teardown', purge)
        self.assertIn("rm -rf /var/lib/caelum", purge)


def harness_with_packaged_binaries(test):
    """The integration harness, its caelumd and caelumctl being the package's."""
    bindir = tempfile.mkdtemp(prefix="caelum-pkgbin-")
    test.addCleanup(shutil.rmtree, bindir)
    for b in ("/usr/sbin/caelumd", "/usr/bin/caelumctl"):
        os.symlink(rel(b), os.path.join(bindir, os.path.basename(b)))
    os.environ["CAELUM_BUILD"] = bindir
    sys.path.insert(0, f"{TOP}/tests/integration")
    import harness
    harness.BUILD, harness.CTL = bindir, f"{bindir}/caelumctl"
    harness.DAEMON = f"{bindir}/caelumd"
    return harness, bindir


# remove then purge as dpkg runs them, in a private mount namespace where /etc, /var/lib and
# /usr/bin are overlays on a tmpfs: the host's stay untouched. $1: the extracted package,
# $2: a caelum.json, $3: scratch dir.
PURGE_SH = r"""
set -eu
pkg=$1 conf=$2 t=$3
mount --make-rprivate /
mount -t tmpfs tmpfs "$t"
for d in /etc /var/lib /usr/bin; do
	n=$(echo "$d" | tr / _)
	mkdir -p "$t/$n.up" "$t/$n.work"
	lower=$d
	[ "$d" = /usr/bin ] && lower="$pkg/usr/bin:/usr/bin"
	mount -t overlay overlay -o "lowerdir=$lower,upperdir=$t/$n.up,workdir=$t/$n.work" "$d"
done
mkdir -p /etc/caelum /var/lib/caelum
cp "$conf" /etc/caelum/caelum.json
echo "state" > /var/lib/caelum/registry.json
sh "$pkg/DEBIAN/prerm" remove
rm /usr/bin/caelumctl                   # dpkg removes the package's files
sh "$pkg/DEBIAN/postrm" remove
test -e /var/lib/caelum/registry.json && echo "state kept on remove"
rm /etc/caelum/caelum.json              # purge: dpkg removes the conffiles
sh "$pkg/DEBIAN/postrm" purge
test -e /var/lib/caelum || echo "state removed on purge"
"""


class MaintainerScriptsRun(unittest.TestCase):
    def test_remove_keeps_enforcement_purge_ends_it(self):
        harness, _ = harness_with_packaged_binaries(self)
        e = harness.Env("purge", services={"alpha": ["8100/tcp"]})
        self.addCleanup(e.cleanup)
        e.start()
        other = e.cgroup("unmanaged/app")
        self.assertEqual(e.bind_in(other, 8100), errno.EPERM, "EPERM while caelumd runs")
        self.assertEqual(e.stop(), 0)  # what prerm's systemctl stop does
        self.assertEqual(e.bind_in(other, 8100), errno.EPERM, "enforcement stays after the stop")
        scratch = tempfile.mkdtemp(prefix="caelum-purge-")
        self.addCleanup(shutil.rmtree, scratch, True)
        p = sh("unshare", "-m", "sh", "-c", PURGE_SH, "purge", ROOT, e.config_path, scratch)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("state kept on remove", p.stdout)
        self.assertRegex(p.stdout, r"detached \d+ links, unpinned \d+ maps")
        self.assertIn("state removed on purge", p.stdout)
        self.assertFalse(os.path.exists(e.bpffs), "pins left after purge")
        self.assertEqual(e.bind_in(other, 8100), 0, "enforcement ended by the purge")


class ManPages(unittest.TestCase):
    PAGES = ("/usr/share/man/man8/caelumd.8.gz", "/usr/share/man/man8/caelumctl.8.gz",
             "/usr/share/man/man5/caelum.json.5.gz")

    def test_render_without_warnings(self):
        for page in self.PAGES:
            p, text = man_text(rel(page))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stderr, "", f"{page}: {p.stderr}")
            self.assertIn("NAME", text)
            self.assertIn("SEE ALSO", text)

    def test_caelumctl_page_covers_the_command_table(self):
        _, text = man_text(rel(self.PAGES[1]))
        missing = []
        for obj, cmds in cmdtable.commands().items():
            # An entry line: "       OBJ ..." or "       OBJ CMD, OBJ CMD2".
            if not re.search(rf"(?m)^ {{7}}{obj}\b", text):
                missing.append(obj)
            for cmd in cmds:
                if cmd == "help":
                    continue  # one "OBJECT help" entry covers every object's help
                if not re.search(rf"(?m)^ {{7}}(.*, )?{obj} {cmd}\b", text):
                    missing.append(f"{obj} {cmd}")
        self.assertRegex(text, r"(?m)^ {7}OBJECT help$")
        self.assertEqual(missing, [], "commands of caelumctl's tables missing in caelumctl(8)")

    def test_caelum_json_page_covers_every_key(self):
        _, text = man_text(rel(self.PAGES[2]))
        svc, db = cmdtable.spec_keys()
        missing = [k for k in cmdtable.config_keys() + svc + db
                   if not re.search(rf"(?m)^ {{7}}{k}\b", text)]
        self.assertEqual(missing, [], "keys missing in caelum.json(5)")
        cap, res = cmdtable.resource_keys()
        missing = [k for k in cap + res if not re.search(rf"\b{k}\b", text)]
        self.assertEqual(missing, [], "capacity/resources keys missing in caelum.json(5)")
        missing = [k for k in cmdtable.mcp_keys() if not re.search(rf"\b{k}\b", text)]
        self.assertEqual(missing, [], "mcp keys missing in caelum.json(5)")
        # "peers": "auto" (the machine registry's hosts) is a value the page must name.
        self.assertRegex(text, r'peers.*\n?.*"auto"')

    def test_pages_list_every_option(self):
        for binary, page in (("/usr/sbin/caelumd", self.PAGES[0]),
                             ("/usr/bin/caelumctl", self.PAGES[1])):
            usage = sh(rel(binary), "--help").stdout + sh(rel(binary), "--help").stderr
            opts = re.findall(r"(?m)^\s+(-\w), (--[\w-]+)", usage)
            self.assertTrue(opts, usage)
            _, text = man_text(rel(page))
            for short, long_ in opts:
                self.assertRegex(text, rf"(?m)^ {{7}}{short}, {long_}\b", f"{page}: {short}")

    def test_caelumd_page_names_the_units_capabilities(self):
        _, text = man_text(rel(self.PAGES[0]))
        named = set(re.findall(r"CAP_[A-Z_]+", text))
        self.assertEqual(named, set(unit_caps()))


class Completion(unittest.TestCase):
    def complete(self, *words):
        """COMPREPLY of the packaged completion for `caelumctl WORDS...`."""
        script = ("source /usr/share/bash-completion/bash_completion\n"
                  f"source {rel('/usr/share/bash-completion/completions/caelumctl')}\n"
                  'COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))\n'
                  'COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}\n'
                  '_caelumctl caelumctl "${COMP_WORDS[COMP_CWORD]}" '
                  '"${COMP_WORDS[COMP_CWORD-1]}"\n'
                  'printf "%s\\n" "${COMPREPLY[@]}"\n')
        env = dict(os.environ, CAELUM_CONFIG="/nonexistent/caelum.json")
        p = sh("bash", "-c", script, "bash", "caelumctl", *words, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        return sorted(w for w in p.stdout.split("\n") if w)

    def test_objects(self):
        self.assertEqual(self.complete(""), sorted(cmdtable.objects()))

    def test_every_command_of_every_object(self):
        for obj, cmds in cmdtable.commands().items():
            if cmds:
                self.assertEqual(self.complete(obj, ""), sorted(cmds), obj)

    def test_prefix_and_keywords(self):
        self.assertEqual(self.complete("port", "re"), ["release", "reserve"])
        self.assertEqual(self.complete("port", "alloc", "service", "x", "proto", ""),
                         ["tcp", "udp"])
        self.assertEqual(self.complete("-j", "events", "f"), ["follow"])


class Unit(unittest.TestCase):
    def test_systemd_analyze_verify(self):
        # The unit names /usr/sbin/caelumd and its man pages: lay the package's over the host's
        # in a private mount namespace, so that verify checks what the package installs.
        cmd = (f"mount -t overlay overlay -o lowerdir={rel('/usr/sbin')}:/usr/sbin /usr/sbin && "
               f"mount -t overlay overlay -o lowerdir={rel('/usr/share/man')}:/usr/share/man "
               f"/usr/share/man && systemd-analyze verify {unit_path()}")
        p = sh("unshare", "-m", "sh", "-c", cmd)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))

    def security(self):
        p = sh("systemd-analyze", "security", "--offline=yes", "--no-pager", unit_path())
        self.assertIn(p.returncode, (0, 1), p.stderr)
        return p.stdout + p.stderr

    def test_exposure_at_most_5(self):
        out = self.security()
        m = re.search(r"Overall exposure level for caelumd.service: (\d+\.\d)", out)
        self.assertIsNotNone(m, out)
        print(f"\nexposure: {m[1]}", file=sys.stderr)
        self.assertLessEqual(float(m[1]), EXPOSURE_MAX, out)

    def test_every_remaining_exposure_is_explained(self):
        """Each item systemd-analyze counts against the unit is named where the unit says why:
        a capability in the capability list ("# CAP_X   why"), anything else in a comment
        block that says "Open:"."""
        blocks, cur = [], []
        with open(unit_path()) as f:
            for line in f:
                if line.startswith("#"):
                    cur.append(line)
                elif cur:
                    blocks.append("".join(cur))
                    cur = []
        open_blocks = "\n".join(b for b in blocks if "Open:" in b)
        cap_list = set(re.findall(r"(?m)^#\s+(CAP_[A-Z_]+)\s{2,}\S", "".join(blocks)))
        unexplained = []
        for line in self.security().splitlines():
            if not line.startswith("✗"):
                continue
            setting = line.split()[1]
            if "~" in setting:  # CapabilityBoundingSet=~CAP_X, RestrictAddressFamilies=~AF_(A|B)
                token = setting.split("~", 1)[1]
                m = re.match(r"([A-Z_]*)\(([^|)]*)", token)
                token = (m[1] + m[2]).rstrip("*") if m else token
            else:  # PrivateNetwork=, User=/DynamicUser=
                token = setting.split("/")[0]
            ok = token in cap_list if token.startswith("CAP_") else token in open_blocks
            if not ok:
                unexplained.append(f"{setting} (not explained: '{token}')")
        self.assertEqual(unexplained, [])

    def test_type_notify_with_watchdog(self):
        with open(unit_path()) as f:
            text = f.read()
        for line in ("Type=notify", "NotifyAccess=main", "WatchdogSec=30s",
                     "ExecStart=/usr/sbin/caelumd -c /etc/caelum/caelum.json"):
            self.assertRegex(text, rf"(?m)^{re.escape(line)}$")


class Sandboxed(unittest.TestCase):
    def test_port_enforcement_under_the_units_capabilities(self):
        """The integration tests' caelumd, the packaged binary, started under the unit's
        capability bounding set and NoNewPrivileges (tests/package/unit-sandbox.sh); the
        Capabilities test checks it really had exactly that set."""
        _, bindir = harness_with_packaged_binaries(self)
        env = dict(os.environ,
                   CAELUM_DAEMON_WRAPPER=f"{HERE}/unit-sandbox.sh {unit_path()}",
                   CAELUM_EXPECT_CAPS=f"{cap_mask(unit_caps()):x}")
        p = subprocess.run([sys.executable, f"{TOP}/tests/integration/run.py", "--build", bindir,
                            "-k", "PortEnforcement", "-k", "Capabilities", "-k", "Notify"],
                           env=env, capture_output=True, text=True)
        sys.stderr.write(p.stderr[-3000:])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr[-6000:])
        self.assertRegex(p.stderr, r"Ran (1[0-9]|[2-9][0-9]) tests")


class CapabilitiesMinimal(unittest.TestCase):
    # Each capability of the unit, and a test that fails without it (the unit says why).
    NEEDS = {
        "CAP_SYS_ADMIN": "test_tcp4_owner_allowed_others_denied",  # bpf(2): nothing loads
        "CAP_SYS_PTRACE": "test_who",  # /proc/PID/fd of the port's holder
        "CAP_MKNOD": "test_verify_passes_and_is_in_status",  # the devices canary
    }

    def test_every_capability_is_needed(self):
        """Without any one of the unit's capabilities a test fails: the set is minimal (the
        converse, that the set suffices, is Sandboxed's)."""
        self.assertEqual(set(unit_caps()), set(self.NEEDS))
        _, bindir = harness_with_packaged_binaries(self)
        for cap, test in self.NEEDS.items():
            fd, unit = tempfile.mkstemp(suffix=".service")
            self.addCleanup(os.unlink, unit)
            with open(unit_path()) as f, os.fdopen(fd, "w") as out:
                for line in f:
                    if line.startswith("CapabilityBoundingSet="):
                        caps = [c for c in line.split("=", 1)[1].split() if c != cap]
                        line = f"CapabilityBoundingSet={' '.join(caps)}\n"
                    out.write(line)
            env = dict(os.environ, CAELUM_DAEMON_WRAPPER=f"{HERE}/unit-sandbox.sh {unit}")
            p = subprocess.run([sys.executable, f"{TOP}/tests/integration/run.py", "--build",
                                bindir, "-k", test], env=env, capture_output=True, text=True)
            self.assertNotEqual(p.returncode, 0, f"{test} passes without {cap}:\n{p.stderr}")
            self.assertRegex(p.stderr, rf"(?m)^{test} .*\.\.\. (FAIL|ERROR)$")


def main():
    global ARGS, ROOT
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--deb", required=True)
    ap.add_argument("-k", dest="pattern", action="append", default=[])
    ARGS = ap.parse_args()
    if os.geteuid() != 0:
        print("test-package needs root (bpf, cgroups, mount namespaces)", file=sys.stderr)
        return 1
    ROOT = tempfile.mkdtemp(prefix="caelum-deb-")
    try:
        sh("dpkg-deb", "-R", ARGS.deb, ROOT, check=True)
        loader = unittest.TestLoader()
        if ARGS.pattern:
            loader.testNamePatterns = [f"*{p}*" for p in ARGS.pattern]
        suite = loader.loadTestsFromModule(sys.modules[__name__])
        result = unittest.TextTestRunner(verbosity=2).run(suite)
    finally:
        shutil.rmtree(ROOT, ignore_errors=True)
    if result.skipped:
        print(f"{len(result.skipped)} tests were skipped: failing the run", file=sys.stderr)
        return 1
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
