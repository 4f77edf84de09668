"""Throwaway certificates for the TLS tests, made with the `openssl` command in a temporary directory: a test
CA and server certificates signed by it. Nothing here is ever committed."""

import os
import subprocess


def _run(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class TestPKI:
    def __init__(self, directory):
        self.dir = directory
        _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=weir test CA", cwd=directory)
        self.ca = os.path.join(directory, "ca.pem")
        self._serial = 0x1000

    def issue(self, name, hosts=("localhost",), ips=("127.0.0.1",)):
        """Signs a certificate for `hosts` and `ips`; returns (cert path, key path, serial as upper-case hex)."""
        self._serial += 1
        san = ",".join([f"DNS:{h}" for h in hosts] + [f"IP:{i}" for i in ips])
        ext = os.path.join(self.dir, f"{name}.ext")
        with open(ext, "w") as f:
            f.write(f"subjectAltName={san}\n")
        _run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", f"/CN={hosts[0] if hosts else name}", cwd=self.dir)
        _run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial",
             str(self._serial), "-out", f"{name}.pem", "-days", "2", "-extfile", ext, cwd=self.dir)
        return os.path.join(self.dir, f"{name}.pem"), os.path.join(self.dir, f"{name}.key"), f"{self._serial:X}"
