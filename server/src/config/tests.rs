use super::*;

#[test]
fn example_config_in_deploy_parses_and_validates() {
    let mut config: Config = toml::from_str(include_str!("../../../deploy/pagecore.toml")).unwrap();
    assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(config.wal.segment_size_bytes, WalConfig::default().segment_size_bytes);
    config.cores = 1;
    let config = config.validate().unwrap();
    assert_eq!(config.owner_core(wal::TenantId::from_u128(5)), 0);
}

#[test]
fn rejects_bad_settings() {
    let mut config = Config { cores: 1, ..Config::default() };
    config.wal.segment_size_bytes = 5000;
    assert!(matches!(
        config.validate(),
        Err(ConfigError::Invalid { key: "wal.segment_size_bytes", .. })
    ));
    let mut config = Config { cores: 1, ..Config::default() };
    config.placement.insert("nothex".into(), 0);
    assert!(matches!(config.validate(), Err(ConfigError::Invalid { key: "placement", .. })));
    let unknown = toml::from_str::<Config>("no_such_key = 1");
    assert!(unknown.is_err());
}

#[test]
fn placement_is_explicit_or_a_stable_hash() {
    let mut config = Config { cores: 2, ..Config::default() };
    let tenant = wal::TenantId::from_u128(0xabc);
    let hashed = config.owner_core(tenant);
    assert_eq!(hashed, config.owner_core(tenant), "stable");
    config.placement.insert(tenant.to_string(), 1 - hashed);
    assert_eq!(config.owner_core(tenant), 1 - hashed);
}

#[test]
fn cpus_pin_cores_and_are_checked() {
    let config = Config { cpus: vec![0], ..Config::default() }.validate().unwrap();
    assert_eq!((config.cores, config.cpu_of(0)), (1, 0), "cores defaults to the CPU list");
    assert_eq!(Config { cores: 1, ..Config::default() }.validate().unwrap().cpu_of(0), 0);
    let invalid =
        |config: Config| matches!(config.validate(), Err(ConfigError::Invalid { key: "cpus", .. }));
    assert!(invalid(Config { cores: 2, cpus: vec![0], ..Config::default() }), "one CPU per core");
    assert!(invalid(Config { cpus: vec![0, 0], ..Config::default() }), "no CPU twice");
    assert!(invalid(Config { cpus: vec![100_000], ..Config::default() }), "CPU must exist");
}

#[test]
fn metrics_settings_are_checked() {
    let defaults = MetricsConfig::default();
    assert_eq!((defaults.max_tenant_series, defaults.dashboard_sample_ms), (64, 1000));
    let mut config = Config { cores: 1, ..Config::default() };
    config.metrics.tenant_series.push("nothex".into());
    assert!(matches!(
        config.validate(),
        Err(ConfigError::Invalid { key: "metrics.tenant_series", .. })
    ));
    let mut config = Config { cores: 1, ..Config::default() };
    config.metrics.dashboard_sample_ms = 10;
    assert!(matches!(config.validate(), Err(ConfigError::Invalid { key: "metrics", .. })));
    let parsed: Config =
        toml::from_str("slow_request_ms = 5\n[metrics]\nmax_tenant_series = 3\n").unwrap();
    assert_eq!((parsed.slow_request_ms, parsed.metrics.max_tenant_series), (5, 3));
}

#[test]
fn auth_secret_files_are_read_and_checked_at_validation() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config { cores: 1, ..Config::default() };
    config.auth.token_secret_file = Some(dir.path().join("missing"));
    let err = config.validate().unwrap_err();
    assert!(matches!(err, ConfigError::Invalid { key: "auth.token_secret_file", .. }), "{err}");
    std::fs::write(dir.path().join("short"), "too-short-secret").unwrap();
    let mut config = Config { cores: 1, ..Config::default() };
    config.auth.admin_token_file = Some(dir.path().join("short"));
    let err = config.validate().unwrap_err();
    assert!(matches!(err, ConfigError::Invalid { key: "auth.admin_token_file", .. }), "{err}");
    assert!(!err.to_string().contains("too-short-secret"), "the secret is in the error");
    std::fs::write(dir.path().join("good"), "x".repeat(32)).unwrap();
    let mut config = Config { cores: 1, ..Config::default() };
    config.auth.token_secret_file = Some(dir.path().join("good"));
    let config = config.validate().unwrap();
    assert!(config.auth.token_secret.is_some() && config.auth.admin_token.is_none());
    assert!(!format!("{config:?}").contains(&"x".repeat(32)), "Debug shows the secret");
}

#[test]
fn limits_have_defaults_and_per_tenant_overrides() {
    let tenant = "0123456789abcdef0123456789abcdef";
    let text = format!(
        "cores = 1\n[limits]\nget_page_per_sec = 100\nburst_secs = 0.5\n\
         [limits.tenants.\"{tenant}\"]\nwal_bytes_per_sec = 5000\n"
    );
    let config = toml::from_str::<Config>(&text).unwrap().validate().unwrap();
    assert_eq!(config.limits.of("ffffffffffffffffffffffffffffffff").get_page_per_sec, 100);
    let own = config.limits.of(tenant);
    assert_eq!((own.get_page_per_sec, own.wal_bytes_per_sec), (0, 5000));
    let bad = toml::from_str::<Config>("cores = 1\n[limits.tenants.nothex]\n").unwrap().validate();
    assert!(matches!(bad, Err(ConfigError::Invalid { key: "limits.tenants", .. })));
}

#[test]
fn tls_is_off_by_default_and_half_settings_are_refused() {
    let config = Config { cores: 1, ..Config::default() }.validate().unwrap();
    assert!(config.tls.protocol_config().is_none() && config.tls.admin_config().is_none());
    for toml in [
        "[tls]\nprotocol = true\n",
        "[tls]\ncert_chain_file = \"c.pem\"\nprotocol = true\n",
        "[tls]\ncert_chain_file = \"c.pem\"\nprivate_key_file = \"k.pem\"\n",
    ] {
        let mut config: Config = toml::from_str(toml).unwrap();
        config.cores = 1;
        assert!(
            matches!(config.validate(), Err(ConfigError::Invalid { key: "tls", .. })),
            "{toml}"
        );
    }
}
