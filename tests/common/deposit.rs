//! A message left by a real caller: SIPp runs `deposit.xml` against a
//! running server, playing a pcap of silence (while a short recorded
//! greeting plays), the test speech and an RFC 4733 `#`. Needs root (SIPp
//! plays pcaps through a raw socket).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::audio::{self, ULAW_SILENCE};
use super::pcap::{EVENT_POUND, RtpStream};
use super::server::{self, Server};
use super::sipp::{self, SippOpts, SippRun};
use super::store;

/// The caller SIPp's deposit scenario presents (From user and name).
pub const CALLER_NUMBER: &str = "5551234";
pub const CALLER_NAME: &str = "Sipp Caller";
/// Telephone-event payload type in the scenario's offer.
const TE_PT: u8 = 101;

/// Silence while the greeting plays, the speech, `#`, then more speech
/// (which a server that missed the `#` would record), PCMU.
fn pcap(dir: &Path) -> PathBuf {
    let sp = audio::speech();
    let mut s = RtpStream::new(0x5eed_0100, 4242, 160_000);
    s.audio(0, &vec![ULAW_SILENCE; 1200 * 8], ULAW_SILENCE);
    s.audio(0, &sp.ulaw, ULAW_SILENCE);
    s.dtmf_event(TE_PT, EVENT_POUND, 200);
    s.audio(0, &sp.ulaw, ULAW_SILENCE);
    let path = dir.join("deposit.pcap");
    s.write_pcap(&path);
    path
}

/// SIPp calls `mailbox` on `server` and leaves the speech; panics (with
/// SIPp's report) unless the scenario succeeds. A 0.5 s greeting is
/// installed first if the box has none, so the recording starts before
/// the speech does.
pub fn leave_message(server: &Server, mailbox: &str) -> SippRun {
    let greeting = server
        .data_dir
        .join("mailboxes")
        .join(mailbox)
        .join("greetings/unavailable.wav");
    if !greeting.exists() {
        server::install_greeting(&server.data_dir, mailbox, 0.5);
    }
    let media = tempfile::Builder::new()
        .prefix("voxmail-deposit-")
        .tempdir()
        .unwrap();
    let opts = SippOpts::new(mailbox)
        .file("media.pcap", &pcap(media.path()))
        .key("codec_pt", 0)
        .key("codec_name", "PCMU")
        .timeout(Duration::from_secs(40));
    let run = sipp::run_sipp("deposit.xml", server.sip, &opts);
    run.assert_success();
    run
}

/// [`leave_message`], then waits (15 s) for exactly `expect_total`
/// messages in the inbox and returns the one this call left.
pub fn leave_and_find(server: &Server, mailbox: &str, expect_total: usize) -> store::Message {
    let run = leave_message(server, mailbox);
    let msgs = store::wait_messages(
        &server.data_dir,
        mailbox,
        expect_total,
        Duration::from_secs(15),
        Duration::from_millis(300),
    );
    msgs.into_iter()
        .find(|m| m.str_field("call_id") == run.call_id)
        .unwrap_or_else(|| {
            panic!(
                "no message from call {} in {:?}",
                run.call_id,
                store::inbox_files(&server.data_dir, mailbox)
            )
        })
}
