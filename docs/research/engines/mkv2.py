import json, sys, collections
d = json.load(open(sys.argv[1]))["$defs"]
keys = collections.Counter()
def fix(s, inprops=False):
    if isinstance(s, dict):
        out = {}
        for k, v in s.items():
            if not inprops: keys[k] += 1
            if inprops: out[k] = fix(v)
            elif k == "$ref" and isinstance(v, str): out[k] = v.replace("#/$defs/", "#/definitions/")
            elif k == "type" and isinstance(v, list):
                t = [x for x in v if x != "null"]; out[k] = t[0]
            elif k in ("properties", "patternProperties"): out[k] = fix(v, True)
            elif k in ("$schema", "$id"): continue
            else: out[k] = fix(v)
        return out
    if isinstance(s, list): return [fix(x) for x in s]
    return s
defs = {k: fix(v) for k, v in d.items()}
defs["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {"type": "string"}
defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {"type": "string", "format": "int-or-string"}
doc = {"swagger": "2.0", "info": {"title": "Kubernetes", "version": sys.argv[3]}, "paths": {}, "definitions": defs}
json.dump(doc, open(sys.argv[2], "w"))
print("keys used:", sorted(keys), file=sys.stderr)
