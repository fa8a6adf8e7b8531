# A small stand-in for bitbake, for tests/e2e/yocto_layer: compiles the layer's Python as
# bitbake would, and runs its tasks and parse-time code against a datastore with bitbake's
# assignment operators and ${VAR} / ${@python} expansion. Protocol: datastore.rs (MINIBB).
import ast, json, os, re, sys, types

request = json.load(sys.stdin)

def function_source(name, body):
    return "def %s(d):\n%s    pass\n" % (name, body)

if request["mode"] == "compile":
    errors = []
    for item in request["items"]:
        try:
            if item["kind"] == "expression":
                ast.parse(item["source"].strip(), mode="eval")
            elif item["kind"] == "function":
                ast.parse(function_source("f", item["source"]))
            else:
                ast.parse(item["source"])
        except SyntaxError as e:
            errors.append("%s: %s" % (item["where"], e))
    json.dump(errors, sys.stdout)
    sys.exit(0)

class Fatal(Exception):
    pass

class SkipRecipe(Exception):
    pass

def fatal(msg):
    raise Fatal(msg)

bb = types.ModuleType("bb")
bb.fatal = fatal
bb.warn = bb.note = bb.debug = lambda *args: None
bb.parse = types.SimpleNamespace(SkipRecipe=SkipRecipe, mark_dependency=lambda d, path: None)
GLOBALS = {"bb": bb, "os": os, "__builtins__": __builtins__}
VAR = re.compile(r"\$\{[a-zA-Z0-9\-_+./~:]+?\}")

class Data:
    def __init__(self):
        self.hard, self.weak, self.extra, self.flags = {}, {}, {}, {}

    def getVar(self, name, expand=True):
        value = self.hard.get(name, self.weak.get(name))
        for op, extra in self.extra.get(name, []):
            if op == "append":
                value = (value or "") + extra
            elif op == "prepend":
                value = extra + (value or "")
        if value is None or not expand:
            return value
        value = self.expand(value)
        for op, extra in self.extra.get(name, []):
            if op == "remove":
                gone = set(self.expand(extra).split())
                value = " ".join(w for w in value.split() if w not in gone)
        return value

    def setVar(self, name, value):
        self.hard[name] = value

    def getVarFlag(self, name, flag, expand=True):
        value = self.flags.get((name, flag))
        return self.expand(value) if value is not None and expand else value

    def setVarFlag(self, name, flag, value):
        self.flags[(name, flag)] = value

    def appendVarFlag(self, name, flag, value):
        self.flags[(name, flag)] = self.flags.get((name, flag), "") + value

    def expand(self, text):
        for _ in range(64):
            new = self._python(VAR.sub(self._var, text))
            if new == text:
                return text
            text = new
        fatal("the expansion of %r does not end" % text)

    def _var(self, match):
        value = self.getVar(match.group(0)[2:-1])
        return match.group(0) if value is None else value

    def _python(self, text):
        out, i = [], 0
        while True:
            start = text.find("${@", i)
            if start < 0:
                out.append(text[i:])
                return "".join(out)
            depth, end = 0, start + 1
            while end < len(text):
                if text[end] == "{":
                    depth += 1
                elif text[end] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                end += 1
            else:
                fatal("unterminated ${@ in %r" % text)
            value = eval(text[start + 3:end], GLOBALS, {"d": self})
            out.append(text[i:start])
            out.append("" if value is None else str(value))
            i = end + 1

def assign(d, var, op, value):
    name, _, override = var.partition(":")
    if override in ("append", "prepend", "remove"):
        d.extra.setdefault(name, []).append((override, value))
        return
    # Any other override is not active here: VAR:override is a variable of its own, which is
    # how d.getVar("CONVERSION_CMD:caibx") finds it.
    name = var
    if op == "=":
        d.hard[name] = value
    elif op == "?=":
        if name not in d.hard:
            d.hard[name] = value
    elif op == "??=":
        d.weak[name] = value
    elif op == ":=":
        d.hard[name] = d.expand(value)
    elif op in ("+=", ".="):
        d.hard[name] = (d.hard.get(name) or "") + (" " if op == "+=" else "") + value
    elif op in ("=+", "=."):
        d.hard[name] = value + (" " if op == "=+" else "") + (d.hard.get(name) or "")
    else:
        fatal("unknown operator %s" % op)

d = Data()
for var, op, value in request["assignments"]:
    assign(d, var, op, value)
for source in request["defs"]:
    exec(compile(source, "<def>", "exec"), GLOBALS)
results = []
for action in request["actions"]:
    try:
        if "expand" in action:
            results.append({"value": d.expand(action["expand"])})
        elif "getvar" in action:
            results.append({"value": d.getVar(action["getvar"])})
        elif "eval" in action:
            results.append({"value": eval(action["eval"], GLOBALS, {"d": d})})
        else:
            namespace = dict(GLOBALS)
            exec(compile(function_source("task", action["python"]), "<task>", "exec"), namespace)
            namespace["task"](d)
            results.append({"ok": True})
    except Fatal as e:
        results.append({"fatal": str(e)})
    except SkipRecipe as e:
        results.append({"skip": str(e)})
    except Exception as e:
        results.append({"error": "%s: %s" % (type(e).__name__, e)})
json.dump(results, sys.stdout)
