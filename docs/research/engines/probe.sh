get() { timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2 && printf 'GET / HTTP/1.0\r\nHost: x\r\n\r\n' >&3 && cat <&3 | tail -1" 2>&1 || echo "($1:$2 unreachable)"; }
echo "alias:"; get egress-proxy 3128
echo "name:"; get apiary-egress-proxy 3128
echo "gw host:"; get host.containers.internal 18080 | head -c 60; echo
echo "other bridge host ip:"; get 10.88.0.1 18080 | head -c 60; echo
echo "vm eth0:"; get 192.0.2.2 18080 | head -c 60; echo
echo "outside:"; get 151.101.2.132 80
getent hosts deb.debian.org || echo "no external DNS"
