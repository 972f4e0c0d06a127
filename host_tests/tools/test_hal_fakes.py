"""The fakes the ESP32 HAL tests run against offer nothing the real modules lack.

host_tests/unit/fakes/{machine,network,esp32}.py stand in for the ESP32 port's
modules in the unix port. Each public name they define (but the test controls
listed in their FAKE_ONLY) must exist in micropython-esp32-stubs (pinned in
tools/requirements.txt), with the same constant values, and every call a fake
function accepts must be one some overload of the stub accepts: otherwise a
HAL call the device would refuse could pass its unit test.
"""
import ast
import os
import sysconfig

import pytest

import mpy_runtimes

FAKES = os.path.join(mpy_runtimes.UNIT, "fakes")
STUBS = sysconfig.get_paths()["purelib"]
MODULES = ("machine", "network", "esp32")

POS, KW = "pos", "kw"


def _parse(path):
    with open(path) as f:
        return ast.parse(f.read(), path)


class Sig:
    """A def's parameters: [(name, kind, required)] with kind "posonly", "pos" or "kwonly", plus * and **."""

    def __init__(self, fn, method):
        a = fn.args
        pos = [(p.arg, "posonly") for p in a.posonlyargs] + [(p.arg, "pos") for p in a.args]
        if method and pos:
            pos = pos[1:]  # self / cls
            shift = 1
        else:
            shift = 0
        ndef = len(a.defaults)
        npos = len(pos) + shift
        self.params = []
        for i, (name, kind) in enumerate(pos):
            self.params.append((name, kind, i + shift < npos - ndef))
        for p, d in zip(a.kwonlyargs, a.kw_defaults):
            self.params.append((p.arg, "kwonly", d is None))
        self.star = a.vararg is not None
        self.dstar = a.kwarg is not None
        self.text = ast.unparse(a)

    def positional(self):
        return [n for n, k, _ in self.params if k in ("posonly", "pos")]

    def accepts(self, call):
        """call: [(name or index, how)] with how POS (by position, in order) or KW."""
        pos = self.positional()
        names = {n: (k, r) for n, k, r in self.params}
        given = set()
        npos = 0
        for name, how in call:
            if how == POS:
                if npos < len(pos):
                    given.add(pos[npos])
                elif not self.star:
                    return False
                npos += 1
            else:
                k = names.get(name)
                if k is None:
                    if not self.dstar:
                        return False
                elif k[0] == "posonly" or name in given:
                    return False
                given.add(name)
        return all(n in given for n, _, r in self.params if r)


def _calls(fake):
    """Every shape of call the fake accepts: a prefix of its positional parameters, any of its keyword-only ones.

    Positional parameters are tried by position only: MicroPython has no `/`, so a
    fake cannot refuse them by keyword; the type check of the HAL against the stubs
    catches a keyword use where the device wants a position.
    """
    pos = [(n, r) for n, k, r in fake.params if k != "kwonly"]
    kwo = [(n, r) for n, k, r in fake.params if k == "kwonly"]
    nreq = sum(1 for _, r in pos if r)
    prefixes = [[(n, POS) for n, _ in pos[:i]] for i in range(nreq, len(pos) + 1)]
    kws = [[]]
    for n, r in kwo:
        kws = [c + [(n, KW)] for c in kws] + ([] if r else kws)
    out = [p + k for p in prefixes for k in kws]
    if fake.star:
        out += [c + [("*", POS)] for c in out if len(c) >= len(pos)]
    if fake.dstar:
        out += [c + [("**extra", KW)] for c in out]
    return out


def _defs(body, method):
    out = {}
    for n in body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.setdefault(n.name, []).append(Sig(n, method))
    return out


def _consts(body):
    out = {}
    for n in body:
        target = value = None
        if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name):
            target, value = n.targets[0].id, n.value
        elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name):
            target, value = n.target.id, n.value
        if target is not None:
            try:
                out[target] = ast.literal_eval(value) if value is not None else None
            except ValueError:
                out[target] = None  # not a literal: present, value unknown
    return out


def _classes(body):
    return {n.name: n for n in body if isinstance(n, ast.ClassDef)}


def _check_calls(where, fake_sigs, stub_sigs, problems):
    for fs in fake_sigs:
        for call in _calls(fs):
            if not any(ss.accepts(call) for ss in stub_sigs):
                problems.append("%s(%s): the call %r is accepted by the fake, by no stub signature (%s)"
                                % (where, fs.text, [n for n, _ in call], " | ".join(s.text for s in stub_sigs)))
                break


def _check_scope(where, fake_body, stub_body, skip, problems, method):
    fdefs, sdefs = _defs(fake_body, method), _defs(stub_body, method)
    fconst, sconst = _consts(fake_body), _consts(stub_body)
    fcls, scls = _classes(fake_body), _classes(stub_body)
    for name in sorted(set(fdefs) | set(fconst) | set(fcls)):
        if name in skip or (name.startswith("_") and name != "__init__"):
            continue
        w = "%s.%s" % (where, name)
        if name in fdefs:
            if name not in sdefs:
                problems.append("%s: not in the stub" % w)
            else:
                _check_calls(w, fdefs[name], sdefs[name], problems)
        elif name in fconst:
            if name not in sconst:
                problems.append("%s: constant not in the stub" % w)
            elif sconst[name] is not None and fconst[name] != sconst[name]:
                problems.append("%s = %r, the stub says %r" % (w, fconst[name], sconst[name]))
        elif name in fcls:
            if name not in scls:
                problems.append("%s: class not in the stub" % w)
            else:
                _check_scope(w, fcls[name].body, scls[name].body, (), problems, True)


def _fake_only(tree):
    c = _consts(tree.body).get("FAKE_ONLY")
    return tuple(c or ())


@pytest.mark.parametrize("mod", MODULES)
def test_fake_matches_the_pinned_stubs(mod):
    stub_path = os.path.join(STUBS, mod + ".pyi")
    assert os.path.exists(stub_path), "micropython-esp32-stubs missing: make setup"
    fake = _parse(os.path.join(FAKES, mod + ".py"))
    stub = _parse(stub_path)
    problems = []
    _check_scope(mod, fake.body, stub.body, _fake_only(fake), problems, False)
    assert not problems, "\n".join(problems)


def test_checker_catches_a_call_the_real_module_does_not_have(tmp_path):
    # guards the checker itself: an extra keyword, a missing required argument, a made-up function
    stub = _parse(os.path.join(STUBS, "machine.pyi"))
    fake = ast.parse(
        "class WDT:\n    def __init__(self, *, id=0, timeout=5000, window=0):\n        pass\n"
        "class Pin:\n    def __init__(self, id=0):\n        pass\n"
        "def freq_boost():\n    pass\n"
        "PWRON_RESET = 7\n")
    problems = []
    _check_scope("machine", fake.body, stub.body, (), problems, False)
    text = "\n".join(problems)
    assert "machine.WDT.__init__" in text and "window" in text
    assert "machine.freq_boost: not in the stub" in text
    assert "machine.PWRON_RESET = 7" in text
    # Pin(id) is required on the device: a fake that lets it be left out is wrong too
    assert "machine.Pin.__init__" in text
