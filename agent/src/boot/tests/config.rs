//! The bootloader configuration: JSON forms, defaults, validation, bootnames.

use super::bootnames;
use crate::boot::{BootError, BootloaderConfig, open};
use std::path::PathBuf;

fn parse(json: &str) -> Result<BootloaderConfig, String> {
    serde_json::from_str(json).map_err(|e| e.to_string())
}

#[test]
fn json_forms_and_defaults() {
    assert_eq!(
        parse(r#"{"backend":"uboot","fw_env_config":"/etc/fw_env.config","boot_attempts":5}"#),
        Ok(BootloaderConfig::Uboot {
            fw_env_config: PathBuf::from("/etc/fw_env.config"),
            boot_attempts: 5,
            boot_attempts_primary: 3,
            allow_nonredundant_env: false,
        })
    );
    assert_eq!(
        parse(r#"{"backend":"grub","grubenv":"/boot/grub/grubenv"}"#),
        Ok(BootloaderConfig::Grub {
            grubenv: PathBuf::from("/boot/grub/grubenv")
        })
    );
    assert_eq!(
        parse(r#"{"backend":"custom","script":"/usr/bin/bl"}"#),
        Ok(BootloaderConfig::Custom {
            script: PathBuf::from("/usr/bin/bl"),
            boot_attempts: 3
        })
    );
    for (json, error) in [
        (r#"{"backend":"barebox"}"#, "unknown variant"),
        (
            r#"{"backend":"grub","grubenv":"/g","extra":1}"#,
            "unknown field",
        ),
        (r#"{"backend":"uboot"}"#, "missing field `fw_env_config`"),
        (r#"{"grubenv":"/g"}"#, "missing field `backend`"),
    ] {
        let e = parse(json).unwrap_err();
        assert!(e.contains(error), "{json}: {e}");
    }
}

#[test]
fn validation() {
    let uboot = |good, primary| BootloaderConfig::Uboot {
        fw_env_config: PathBuf::from("/etc/fw_env.config"),
        boot_attempts: good,
        boot_attempts_primary: primary,
        allow_nonredundant_env: false,
    };
    assert_eq!(uboot(1, 255).validate(), Ok(()));
    assert!(
        uboot(0, 3)
            .validate()
            .unwrap_err()
            .contains("boot_attempts must")
    );
    assert!(
        uboot(3, 256)
            .validate()
            .unwrap_err()
            .contains("boot_attempts_primary")
    );
    let grub = BootloaderConfig::Grub {
        grubenv: PathBuf::new(),
    };
    assert!(
        grub.validate()
            .unwrap_err()
            .contains("grubenv must not be empty")
    );
    assert!(matches!(
        open(&grub, &bootnames()),
        Err(BootError::Config(_))
    ));
}

#[test]
fn bootnames_are_checked() {
    let config = BootloaderConfig::Grub {
        grubenv: PathBuf::from("/nonexistent/grubenv"),
    };
    for names in [vec![], vec!["A", "A"], vec!["A B"], vec![""], vec!["A=1"]] {
        let names: Vec<String> = names.into_iter().map(String::from).collect();
        let e = open(&config, &names).err().expect("refused");
        assert!(matches!(e, BootError::Config(_)), "{names:?}: {e}");
    }
    assert!(open(&config, &["A".into(), "rescue-1.b".into()]).is_ok());
}
