//! Optional log file for the SDK's `tracing` output.

use std::sync::Once;

use crate::config::ClientConfig;

static INIT: Once = Once::new();

/// Installs a process-wide subscriber writing to `config.log_file` at `config.log_level`, if a
/// file is configured and no subscriber exists yet. Applications that install their own
/// `tracing` subscriber get the SDK's events there instead.
pub(crate) fn init(config: &ClientConfig) {
    let Some(path) = config.log_file.clone() else { return };
    let level = config.log_level.clone();
    INIT.call_once(move || {
        let file = match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("rtm2: cannot open log file {}: {e}", path.display());
                return;
            }
        };
        let filter = tracing_subscriber::EnvFilter::try_new(format!("rtm2={level},rtm2_core={level},rtm2_server={level}"))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .try_init();
    });
}
