import http.client, socket, json, time, sys
class U(http.client.HTTPConnection):
    def __init__(s, path): super().__init__("d"); s.p=path
    def connect(s): s.sock=socket.socket(socket.AF_UNIX); s.sock.connect(s.p)
def call(m, url, body=None):
    c=U("/run/podman/podman.sock"); c.request(m, "/v1.41"+url, body=json.dumps(body) if body is not None else None, headers={"Content-Type":"application/json"})
    r=c.getresponse(); d=r.read(); c.close(); return r.status, d
res=[]
for i in range(int(sys.argv[1])):
    t0=time.time()
    call("POST", "/volumes/create", {"Name":f"bench-ws-{i}","Labels":{"apiary.bench":"1"}})
    st,d=call("POST", f"/containers/create?name=bench-{i}", {"Image":"localhost/apiary-box:bookworm","Cmd":["/bin/sh","-c","echo ready; sleep 30"],"Labels":{"apiary.bench":"1"},
      "HostConfig":{"Memory":512<<20,"NanoCpus":10**9,"PidsLimit":256,"Mounts":[{"Type":"volume","Source":f"bench-ws-{i}","Target":"/workspace"},{"Type":"bind","Source":"/usr/bin/git","Target":"/opt/apiary/apiary","ReadOnly":True}],"NetworkMode":sys.argv[2]}})
    cid=json.loads(d)["Id"]; t1=time.time()
    st,_=call("POST", f"/containers/{cid}/start"); assert st==204, _
    t2=time.time()
    while b"ready" not in call("GET", f"/containers/{cid}/logs?stdout=1")[1]: time.sleep(0.01)
    t3=time.time()
    call("POST", f"/containers/{cid}/kill?signal=KILL"); call("DELETE", f"/containers/{cid}?force=1&v=1"); st,_=call("DELETE", f"/volumes/bench-ws-{i}")
    t4=time.time()
    res.append((t1-t0,t2-t1,t3-t2,t3-t0,t4-t3)); print("create %.3f start %.3f first-output %.3f total %.3f teardown %.3f"%res[-1], "volrm", st)
import statistics as S
print("median total create->output %.3f s, median teardown %.3f s"%(S.median(r[3] for r in res), S.median(r[4] for r in res)))
