#!/usr/bin/env python3
"""Shows the manifests in deploy/kubernetes apply: `kubectl apply --dry-run=client` against a
local stand-in of the Kubernetes API's discovery and OpenAPI v2 document (protobuf, built from
the API's types by `make kube-openapi`), so kubectl maps every kind and validates every field;
and each document against the same types with kubernetes-validate (strict). A manifest with a
field the API does not know must be refused by both (the check is no rubber stamp).

Usage: check_kubernetes_manifests.py KUBECTL OPENAPI_V2.pb MANIFEST_DIR
"""

import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading

import kubernetes_validate
import yaml

VERSION = "1.34"
V = ["create", "delete", "get", "list", "patch", "update", "watch"]
GROUPS = {
    "": {"v1": [("namespaces", "Namespace", False), ("serviceaccounts", "ServiceAccount", True),
                ("services", "Service", True), ("secrets", "Secret", True), ("pods", "Pod", True)]},
    "apps": {"v1": [("deployments", "Deployment", True)]},
    "rbac.authorization.k8s.io": {"v1": [("roles", "Role", True), ("rolebindings", "RoleBinding", True)]},
    "networking.k8s.io": {"v1": [("networkpolicies", "NetworkPolicy", True)]},
}


def resource_list(group, version):
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": [
        {"name": n, "singularName": k.lower(), "namespaced": ns, "kind": k, "verbs": V}
        for n, k, ns in GROUPS[group][version]]}


def serve(pb):
    spec = open(pb, "rb").read()

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def send(self, code, body, ctype="application/json"):
            b = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)

        def do_GET(self):
            p = self.path.split("?")[0]
            if p == "/api":
                return self.send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
            if p == "/apis":
                return self.send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                    {"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
                     "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"}}
                    for g in GROUPS if g]})
            if p == "/api/v1":
                return self.send(200, resource_list("", "v1"))
            for g in GROUPS:
                if g and p == f"/apis/{g}/v1":
                    return self.send(200, resource_list(g, "v1"))
            if p == "/openapi/v2":
                return self.send(200, spec, "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
            if p == "/version":
                return self.send(200, {"major": "1", "minor": VERSION.split(".")[1], "gitVersion": f"v{VERSION}.0"})
            # Nothing exists yet: apply creates (dry run).
            return self.send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                   "reason": "NotFound", "code": 404, "message": "not found"})

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def kubectl_apply(kubectl, url, path):
    env = dict(os.environ, KUBECONFIG="/dev/null", HOME=tempfile.mkdtemp())
    return subprocess.run([kubectl, "apply", "--dry-run=client", "-s", url, "-f", path],
                          capture_output=True, text=True, env=env, timeout=120)


def validate_docs(path):
    problems = []
    files = [os.path.join(path, f) for f in sorted(os.listdir(path)) if f.endswith(".yaml")] \
        if os.path.isdir(path) else [path]
    for f in files:
        for doc in yaml.safe_load_all(open(f)):
            if not doc:
                continue
            try:
                kubernetes_validate.validate(doc, VERSION, strict=True)
            except kubernetes_validate.ValidationError as e:
                problems.append(f"{f}: {doc.get('kind')} {doc['metadata'].get('name')}: {e.message}")
    return problems


def main():
    kubectl, pb, manifests = sys.argv[1:4]
    url = serve(pb)
    ok = True
    out = kubectl_apply(kubectl, url, manifests)
    print(out.stdout.strip())
    if out.returncode != 0:
        print(f"kubectl refused the manifests:\n{out.stderr}")
        ok = False
    problems = validate_docs(manifests)
    for p in problems:
        print(p)
    ok = ok and not problems
    # A manifest with a field Kubernetes does not have: both must refuse it.
    bad = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    bad.write("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: x\n  namespace: apiary\nbogusField: 1\n")
    bad.close()
    refused = kubectl_apply(kubectl, url, bad.name)
    if refused.returncode == 0 or "bogusField" not in refused.stderr:
        print(f"kubectl took a manifest with an unknown field: {refused.stdout} {refused.stderr}")
        ok = False
    if not validate_docs(bad.name):
        print("kubernetes-validate took a manifest with an unknown field")
        ok = False
    print("the Kubernetes manifests apply (kubectl --dry-run=client, Kubernetes %s types)" % VERSION
          if ok else "the Kubernetes manifests do NOT apply")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
