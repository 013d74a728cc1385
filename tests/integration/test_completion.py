# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""bash completion (completion/caelumctl.bash) against a running caelumd: service, database and
port names come from the daemon; without one, only keywords complete."""
import os
import subprocess

from harness import BUILD, CaelumTest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = ('source /usr/share/bash-completion/bash_completion\n'
          f'source {TOP}/completion/caelumctl.bash\n'
          'COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))\n'
          'COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}\n'
          '_caelumctl caelumctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"\n'
          'printf "%s\\n" "${COMPREPLY[@]}"\n')


def complete(*words, env=None):
    p = subprocess.run(["bash", "-c", SCRIPT, "bash", f"{BUILD}/caelumctl", *words],
                       capture_output=True, text=True, env=env, timeout=30)
    assert p.returncode == 0, p.stderr
    return sorted(w for w in p.stdout.split("\n") if w)


class Completion(CaelumTest):
    def setUp(self):
        self.e = self.env("compl", services={"alpha": ["8100/tcp"], "beta": ["8110/udp"]})
        self.c = ["-c", self.e.config_path]

    def test_names_from_the_daemon(self):
        self.assertEqual(complete(*self.c, "service", "show", ""), ["alpha", "beta"])
        self.assertEqual(complete(*self.c, "run", ""), ["alpha", "beta"])
        self.assertEqual(complete(*self.c, "port", "who", ""), ["8100/tcp", "8110/udp"])
        self.assertEqual(complete(*self.c, "port", "reserve", "8101", "service", "b"), ["beta"])
        self.assertEqual(complete(*self.c, "events", "service", ""), ["alpha", "beta"])
        self.assertEqual(complete(*self.c, "check", "service", "al"), ["alpha"])

    def test_the_config_given_with_c_is_the_one_asked(self):
        # Without -c the default /etc/caelum/caelum.json is asked: not this daemon.
        env = dict(os.environ, CAELUM_CONFIG="/nonexistent/caelum.json")
        self.assertEqual(complete("service", "show", "", env=env), [])
        self.assertEqual(complete(*self.c, "service", "show", "", env=env), ["alpha", "beta"])

    def test_keywords_without_a_daemon(self):
        self.e.stop()
        self.assertEqual(complete(*self.c, "service", "show", ""), [])
        self.assertEqual(complete(*self.c, "port", "alloc", ""), ["service"])
        self.assertEqual(complete(*self.c, "port", "reserve", "8101", ""), ["host", "service"])
        self.assertEqual(complete(*self.c, "port", "reserve", "8101", "host", "n", "s"),
                         ["service"])
        self.assertEqual(complete(*self.c, "port", "release", "8101", ""), ["host"])
