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
