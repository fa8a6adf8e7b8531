//! A loop device over a file, for tests that need a block device (root only). Shared by the
//! end-to-end tests and the agent's bootloader tests (which include this file by path).

use std::path::Path;
use std::process::Command;

/// A loop device over a file, detached on drop.
pub(crate) struct LoopDevice {
    /// The device node, `/dev/loopN`.
    pub(crate) path: String,
}

impl LoopDevice {
    /// Attaches `file`. Tests run in parallel and `losetup --find` can race for the same free
    /// device, so attaching is serialized and retried.
    pub(crate) fn attach(file: &Path) -> Self {
        static ATTACH: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _serialized = ATTACH.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..10 {
            let out = Command::new("losetup")
                .args(["--find", "--show"])
                .arg(file)
                .output()
                .unwrap();
            if out.status.success() {
                let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                return Self { path };
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("could not attach a loop device to {}", file.display());
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.path]).status();
    }
}
