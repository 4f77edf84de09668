"""RSS per idle keep-alive connection of core_test_server: `cd tests/integration &&
python3 measure_idle_rss.py 10000` (WEIR_TEST_BIN_DIR picks the build). Not a test: it prints a number."""
import resource, time, sys
sys.path.insert(0, ".")
from weir_harness import Server, read_response, rss_kib
resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
def rss(pid):
    return rss_kib(pid) * 1024
n = int(sys.argv[1])
with Server("core_test_server", "--idle-timeout-ms", "120000", "--max-connections", "20000") as srv:
    for _ in range(20):
        with srv.connect() as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"); read_response(s)
    time.sleep(0.3); base = rss(srv.proc.pid)
    socks = []
    for _ in range(n):
        s = srv.connect(timeout=30); s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"); read_response(s); socks.append(s)
    time.sleep(0.5)
    print(f"{n} idle keep-alive connections: {(rss(srv.proc.pid)-base)/n:.0f} B of RSS each")
