//! A real docker-registry (Debian package `docker-registry`, distribution 2.8) on loopback,
//! configured by the test: filesystem storage in a temp dir, deletes enabled, free port.

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, TempDir};

/// Extra configuration for the registry.
#[derive(Default, Clone)]
pub struct Options {
    /// `auth:` section (YAML, indented for the top level), e.g. htpasswd or token.
    pub auth: Option<String>,
    /// TLS certificate and key files.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// A running registry, stopped on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Its data and config folder.
    pub dir: TempDir,
}

impl Registry {
    /// Starts docker-registry with deletes enabled.
    pub fn docker() -> Self {
        Self::docker_with(&Options::default())
    }

    /// Starts docker-registry with extra options.
    pub fn docker_with(opts: &Options) -> Self {
        let dir = TempDir::new("registry");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("data").display()
        );
        if let Some((cert, key)) = &opts.tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        if let Some(auth) = &opts.auth {
            config.push_str(auth);
        }
        let cfg_path = dir.join("config.yml");
        std::fs::File::create(&cfg_path)
            .and_then(|mut f| f.write_all(config.as_bytes()))
            .expect("write registry config");
        // The registry's own log, so a configuration it refuses is explained in the panic.
        let log = dir.join("registry.log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).map_or(Stdio::null(), Stdio::from))
            .spawn()
            .expect("docker-registry is not installed: apt-get install -y docker-registry");
        let mut reg = Registry {
            child,
            addr: format!("127.0.0.1:{port}"),
            dir,
        };
        if let Ok(Some(status)) = wait_or_exit(port, &mut reg.child) {
            panic!(
                "docker-registry exited ({status}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        reg
    }

    /// Starts ferro-oci-server (cargo install --locked ferro-oci-server).
    pub fn ferro() -> Self {
        let dir = TempDir::new("ferro");
        let port = free_port();
        let bin = which("ferro-oci-server")
            .expect("ferro-oci-server is not installed: cargo install --locked ferro-oci-server");
        let log = dir.join("ferro.log");
        let child = Command::new(bin)
            .env("FERRO_OCI_LISTEN", format!("127.0.0.1:{port}"))
            .env("FERRO_OCI_STORAGE_DIR", dir.join("data"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).map_or(Stdio::null(), Stdio::from))
            .spawn()
            .expect("start ferro-oci-server");
        let mut reg = Registry {
            child,
            addr: format!("127.0.0.1:{port}"),
            dir,
        };
        // A server that exits (say, its port was taken) must not pass for one that listens.
        if let Ok(Some(status)) = wait_or_exit(port, &mut reg.child) {
            panic!(
                "ferro-oci-server exited ({status}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        reg
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `auth:` section of a docker-registry configuration accepting one user, with the
/// password file made by `htpasswd -Bbn` (bcrypt, as distribution requires) in `dir`.
pub fn htpasswd_auth(dir: &std::path::Path, user: &str, password: &str) -> String {
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
        .expect("htpasswd is not installed: apt-get install -y apache2-utils");
    assert!(out.status.success(), "htpasswd failed");
    let file = dir.join("htpasswd");
    std::fs::write(&file, &out.stdout).expect("write htpasswd");
    format!(
        "auth:\n  htpasswd:\n    realm: oci-conform-test\n    path: {}\n",
        file.display()
    )
}

/// Finds a program on PATH or in ~/.cargo/bin.
pub fn which(name: &str) -> Option<std::path::PathBuf> {
    let mut dirs: Vec<std::path::PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(std::path::PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// Waits for the port to accept connections; returns the exit status if the process died.
fn wait_or_exit(port: u16, child: &mut Child) -> std::io::Result<Option<std::process::ExitStatus>> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server on port {port} did not start within 20 s");
}
