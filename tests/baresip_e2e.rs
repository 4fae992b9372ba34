//! End to end with a real softphone: baresip dials a mailbox on a running
//! voxmail, streams a WAV file (silence while the greeting plays, then
//! speech) and hangs up at the end of the file. The message must be in the
//! inbox with the speech in it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn sh(cmd: &str) {
    let status = Command::new("sh").arg("-c").arg(cmd).status().expect("sh");
    assert!(status.success(), "failed: {cmd}");
}

fn rms(samples: &[i16]) -> f64 {
    let sum: f64 = samples.iter().map(|&s| (s as f64) * (s as f64)).sum();
    (sum / samples.len().max(1) as f64).sqrt()
}

#[test]
fn baresip_leaves_a_message() {
    for tool in ["baresip", "espeak-ng", "sox"] {
        assert!(
            have(tool),
            "{tool} is missing: run scripts/test, which installs it"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");

    // Caller audio: 10 s of silence (greeting and beep), ~4 s of speech, 1 s of silence.
    let wav = |name: &str| d.join(name).to_string_lossy().into_owned();
    sh(&format!(
        "espeak-ng -w {} 'Hello, this is a message left by a real softphone. Please call me back.'",
        wav("espeak.wav")
    ));
    sh(&format!(
        "sox {} -r 8000 -c 1 -b 16 {}",
        wav("espeak.wav"),
        wav("speech.wav")
    ));
    sh(&format!(
        "sox -n -r 8000 -c 1 -b 16 {} trim 0 10",
        wav("pad.wav")
    ));
    sh(&format!(
        "sox -n -r 8000 -c 1 -b 16 {} trim 0 1",
        wav("tail.wav")
    ));
    sh(&format!(
        "sox {} {} {} {}",
        wav("pad.wav"),
        wav("speech.wav"),
        wav("tail.wav"),
        wav("source.wav")
    ));
    let speech = hound::WavReader::open(d.join("speech.wav")).unwrap();
    let speech_secs = speech.duration() as f64 / 8000.0;

    // voxmail on free ports, the shipped config.
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let rtp_base = 33000 + (std::process::id() % 500) as u16 * 4;
    let mut server = Command::new(env!("CARGO_BIN_EXE_voxmail"))
        .args(["run", "--config"])
        .arg(&config)
        .args([
            "--sip-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .args(["--rtp-ports", &format!("{}-{}", rtp_base, rtp_base + 40)])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start voxmail");
    let stdout = server.stdout.take().expect("stdout");
    let server = Kill(server);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let sip = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("sip="))
        .expect("listening line")
        .to_string();

    // baresip: one account, no registration, audio from the file.
    let conf = d.join("baresip");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:0\naudio_player aufile,{}\naudio_source aufile,{}\n\
             ausrc_srate 8000\nauplay_srate 8000\nausrc_channels 1\nauplay_channels 1\n\
             rtp_ports {}-{}\nmodule_path /usr/lib/baresip/modules\nmodule stdio.so\nmodule g711.so\n\
             module aufile.so\nmodule_app account.so\nmodule_app menu.so\n",
            wav("heard.wav"),
            wav("source.wav"),
            rtp_base + 100,
            rtp_base + 140
        ),
    )
    .unwrap();
    std::fs::write(conf.join("accounts"), "<sip:tester@127.0.0.1>;regint=0\n").unwrap();
    std::fs::write(conf.join("contacts"), "").unwrap();
    let status = Command::new("timeout")
        .args(["60", "baresip", "-f"])
        .arg(&conf)
        .args(["-e", &format!("/dial sip:1001@{sip}"), "-t", "20"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run baresip");
    assert!(status.success(), "baresip exited with {status}");

    // The message is delivered after the BYE; give it a moment.
    let inbox = data.join("mailboxes/1001/inbox");
    let deadline = Instant::now() + Duration::from_secs(10);
    let json = loop {
        let found = std::fs::read_dir(&inbox).ok().and_then(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "json"))
        });
        if let Some(p) = found {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "no message in {}",
            inbox.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(meta["caller_number"], "tester");
    assert_eq!(meta["called_number"], "1001");
    assert_eq!(meta["codec"], "PCMU");
    let mut reader = hound::WavReader::open(json.with_extension("wav")).unwrap();
    let spec = reader.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (8000, 1, 16)
    );
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let secs = samples.len() as f64 / 8000.0;
    // The greeting is shorter than the 10 s pad, so all the speech and some
    // silence around it were recorded; nothing beyond the file's end.
    assert!(
        secs >= speech_secs,
        "recorded {secs:.2} s, spoke {speech_secs:.2} s"
    );
    assert!(secs <= speech_secs + 11.0, "recorded {secs:.2} s");
    assert!(
        rms(&samples) > 300.0,
        "the recording is silent (rms {:.0})",
        rms(&samples)
    );
    drop(server);
}
