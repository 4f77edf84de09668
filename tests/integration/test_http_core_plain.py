"""test_http_core.py against an application whose replies are all plain responses (core_test_server --plain 1),
which the connection serves on its fast path: no coroutine while requests arrive whole and answers fit the
socket. Every check that does not need a coroutine handler or an upgrade runs again here."""

import os
import runpy

os.environ["WEIR_CORE_PLAIN"] = "1"
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_http_core.py"), run_name="__main__")
