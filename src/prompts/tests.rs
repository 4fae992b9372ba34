use super::*;

fn committed_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/prompts"))
}

fn committed() -> PromptCache {
    PromptCache::load(&committed_dir()).expect("committed prompts load")
}

/// (languages, prompt names) from the catalogue.
fn catalogue() -> (Vec<String>, Vec<String>) {
    let text = fs::read_to_string(committed_dir().join("catalogue.toml")).unwrap();
    let table: toml::Table = text.parse().unwrap();
    let langs = table["languages"]
        .as_table()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let names = table["prompts"]
        .as_table()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    (langs, names)
}

fn write_wav(path: &Path, spec: hound::WavSpec, samples: &[i16]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

const SPEC: hound::WavSpec = hound::WavSpec {
    channels: 1,
    sample_rate: 8000,
    bits_per_sample: 16,
    sample_format: hound::SampleFormat::Int,
};

#[test]
fn every_catalogue_entry_exists_in_every_language_and_nothing_else() {
    let cache = committed();
    let (langs, names) = catalogue();
    assert_eq!(langs.len(), 4);
    let mut loaded = cache.languages();
    loaded.sort();
    let mut want = langs.clone();
    want.sort();
    assert_eq!(loaded, want);
    for lang in &langs {
        for name in &names {
            assert!(
                cache.contains(lang, name),
                "missing prompts/{lang}/{name}.wav"
            );
        }
    }
    // No stray WAVs outside the catalogue.
    assert_eq!(cache.len(), langs.len() * names.len());
}

#[test]
fn grammar_only_uses_catalogue_prompts() {
    let (langs, names) = catalogue();
    let names: HashSet<&str> = names.iter().map(String::as_str).collect();
    for lang in &langs {
        for n in 0..=120 {
            for name in say::number_names(lang, n)
                .into_iter()
                .chain(say::message_count_names(lang, n, Some(MessageAge::New)))
                .chain(say::message_count_names(lang, n, Some(MessageAge::Old)))
                .chain(say::you_have_names(lang, n, n % 3))
            {
                assert!(names.contains(name), "{lang} {n}: {name} not in catalogue");
            }
        }
    }
}

#[test]
fn committed_prompts_are_trimmed_and_normalized() {
    let cache = committed();
    for lang in cache.languages() {
        for (name, p) in &cache.inner.langs[&lang] {
            let peak = p.iter().map(|s| s.unsigned_abs()).max().unwrap();
            let dbfs = 20.0 * (f64::from(peak) / 32768.0).log10();
            assert!(
                (-4.0..=-2.0).contains(&dbfs),
                "{lang}/{name} peak {dbfs:.1} dBFS"
            );
            // ~50 ms (400 samples) of silence at each end: not more (the
            // trim worked), not less (the padding is there). "Sound" is
            // above -50 dBFS.
            let loud = |s: &i16| s.unsigned_abs() > 100;
            let first = p.iter().position(loud).unwrap();
            let last = p.len() - 1 - p.iter().rposition(loud).unwrap();
            assert!((380..=480).contains(&first), "{lang}/{name} lead {first}");
            assert!((380..=480).contains(&last), "{lang}/{name} tail {last}");
        }
    }
}

#[test]
fn get_falls_back_to_english_then_none() {
    let dir = tempfile::tempdir().unwrap();
    write_wav(&dir.path().join("en/hello.wav"), SPEC, &[1, 2, 3]);
    write_wav(&dir.path().join("en/only-en.wav"), SPEC, &[9]);
    write_wav(&dir.path().join("fr/hello.wav"), SPEC, &[4, 5]);
    let cache = PromptCache::load(dir.path()).unwrap();
    assert_eq!(&*cache.get("fr", "hello").unwrap(), &[4, 5]);
    assert_eq!(&*cache.get("fr", "only-en").unwrap(), &[9]);
    assert_eq!(&*cache.get("fr-CA", "hello").unwrap(), &[4, 5]);
    assert_eq!(&*cache.get("xx", "hello").unwrap(), &[1, 2, 3]);
    assert!(cache.get("fr", "nope").is_none());
    // The second miss is silent but still None.
    assert!(cache.get("fr", "nope").is_none());
    assert!(!cache.contains("fr", "only-en"));
    assert_eq!(cache.languages(), ["en", "fr"]);
}

#[test]
fn committed_french_falls_back_for_a_name_it_lacks() {
    // Copy the real en and fr trees, drop one French prompt.
    let dir = tempfile::tempdir().unwrap();
    for lang in ["en", "fr"] {
        let src = committed_dir().join(lang);
        fs::create_dir_all(dir.path().join(lang)).unwrap();
        for f in ["vm-goodbye.wav", "digit-1.wav"] {
            fs::copy(src.join(f), dir.path().join(lang).join(f)).unwrap();
        }
    }
    fs::remove_file(dir.path().join("fr/vm-goodbye.wav")).unwrap();
    let cache = PromptCache::load(dir.path()).unwrap();
    let en = committed().get("en", "vm-goodbye").unwrap();
    assert_eq!(cache.get("fr", "vm-goodbye").unwrap(), en);
    assert_ne!(
        cache.get("fr", "digit-1").unwrap(),
        cache.get("en", "digit-1").unwrap()
    );
}

#[test]
fn other_rates_and_stereo_are_resampled_junk_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_wav(&dir.path().join("en/ok.wav"), SPEC, &[0; 8]);
    // One second of a 440 Hz tone at 16 kHz, stereo: music on hold, say.
    let wide = hound::WavSpec {
        sample_rate: 16000,
        channels: 2,
        ..SPEC
    };
    let tone: Vec<i16> = (0..16000)
        .flat_map(|i| {
            let v = ((i as f32 * 440.0 * std::f32::consts::TAU / 16000.0).sin() * 8000.0) as i16;
            [v, v]
        })
        .collect();
    write_wav(&dir.path().join("en/moh.wav"), wide, &tone);
    let cache = PromptCache::load(dir.path()).unwrap();
    let moh = cache.get("en", "moh").unwrap();
    assert!((7900..=8100).contains(&moh.len()), "{} samples", moh.len());
    let peak = moh.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(peak > 6000, "level kept, peak {peak}");

    fs::write(dir.path().join("en/broken.wav"), b"RIFF junk").unwrap();
    let err = PromptCache::load(dir.path()).unwrap_err();
    assert!(matches!(err, PromptError::Wav { .. }), "{err:?}");
    assert!(err.to_string().contains("broken.wav"), "{err}");
}

#[test]
fn load_ignores_hidden_and_foreign_files_and_rejects_empty() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        PromptCache::load(dir.path()),
        Err(PromptError::Empty(_))
    ));
    assert!(matches!(
        PromptCache::load(&dir.path().join("absent")),
        Err(PromptError::Io { .. })
    ));
    write_wav(&dir.path().join("en/a.wav"), SPEC, &[1]);
    fs::write(dir.path().join("en/.a.wav.swp"), b"x").unwrap();
    fs::write(dir.path().join("en/README"), b"x").unwrap();
    fs::write(dir.path().join("catalogue.toml"), b"x").unwrap();
    fs::create_dir_all(dir.path().join(".git")).unwrap();
    fs::write(dir.path().join(".git/x.wav"), b"x").unwrap();
    let cache = PromptCache::load(dir.path()).unwrap();
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.languages(), ["en"]);
}

#[test]
fn digits_and_unavailable_greeting() {
    let cache = committed();
    let d = cache.digits("de", "1001");
    assert_eq!(d.len(), 4);
    assert_eq!(d[0], cache.get("de", "digit-1").unwrap());
    assert_eq!(d[1], cache.get("de", "digit-0").unwrap());
    assert_eq!(d[3], d[0]);
    // Shared, not copied: the same allocation every time.
    assert!(Arc::ptr_eq(&d[0], &d[3]));

    let g = cache.unavailable_greeting("es", "42");
    assert_eq!(g.len(), 4);
    assert_eq!(g[0], cache.get("es", "vm-person").unwrap());
    assert_eq!(g[1], cache.get("es", "digit-4").unwrap());
    assert_eq!(g[3], cache.get("es", "vm-unavailable").unwrap());
    assert_ne!(g[0], cache.get("en", "vm-person").unwrap());
    // Letters in a box id are skipped, not an error.
    assert_eq!(cache.unavailable_greeting("en", "sales").len(), 2);
}

#[test]
fn counts_resolve_to_audio() {
    let cache = committed();
    assert_eq!(cache.you_have("fr", 2, 1).len(), 8);
    assert_eq!(cache.you_have("de", 0, 0).len(), 1);
    assert_eq!(cache.number("fr", 71).len(), 3);
    assert_eq!(cache.message_count("es", 1, Some(MessageAge::New)).len(), 3);
}

#[test]
fn default_dir_points_at_prompts() {
    assert!(default_dir().join("en").is_dir());
}
