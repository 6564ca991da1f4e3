import json, sys, http.server
PORT = int(sys.argv[1])
SPEC3 = json.load(open(sys.argv[3]))
RES = [("pods","Pod",True),("namespaces","Namespace",False),("persistentvolumeclaims","PersistentVolumeClaim",True),("services","Service",True),("secrets","Secret",True)]
def rl():
    return {"kind":"APIResourceList","apiVersion":"v1","groupVersion":"v1","resources":[
        {"name":n,"singularName":k.lower(),"namespaced":ns,"kind":k,"verbs":["create","delete","get","list","patch","update","watch"]} for n,k,ns in RES]}
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def send(self, code, obj):
        b = json.dumps(obj).encode(); self.send_response(code); self.send_header("Content-Type","application/json"); self.send_header("Content-Length",str(len(b))); self.end_headers(); self.wfile.write(b)
    def do_GET(self):
        p = self.path.split("?")[0]
        print("GET", self.path, self.headers.get("Accept"), file=sys.stderr, flush=True)
        if p == "/api": return self.send(200, {"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1:%d"%PORT}]})
        if p == "/apis": return self.send(200, {"kind":"APIGroupList","apiVersion":"v1","groups":[]})
        if p == "/api/v1": return self.send(200, rl())
        if p == "/openapi/v2":
            b = open(sys.argv[2], "rb").read(); self.send_response(200); self.send_header("Content-Type","application/com.github.proto-openapi.spec.v2.v1.0+protobuf"); self.send_header("Content-Length",str(len(b))); self.end_headers(); self.wfile.write(b); return
        if p == "/openapi/v3": return self.send(200, {"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=ABC"}}})
        if p == "/openapi/v3/api/v1": return self.send(200, SPEC3)
        if p == "/version": return self.send(200, {"major":"1","minor":"32","gitVersion":"v1.32.0"})
        if p.startswith("/api/v1/namespaces/default/pods/"): return self.send(404, {"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":"not found"})
        return self.send(404, {"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404})
H.do_POST = H.do_PATCH = H.do_GET
http.server.ThreadingHTTPServer(("127.0.0.1", PORT), H).serve_forever()
