//! The durable page store through the real server: layer files, image sets, WAL recycling,
//! retention, branches, crashes during flush and compaction, and corrupt layer files.

use crate::harness::TestServer;
use crate::support::{key, random_batch, FirstByte, Model, Rng, REL};
use server::client::Client;
use server::proto::{Role, Status};
use std::time::Duration;
use wal::{Lsn, TenantId, TimelineId};

/// Small thresholds so a few hundred records make many layers.
const SMALL_STORE: &str = "[store]\nflush_threshold_bytes = 32768\nflush_interval_ms = 200\n\
    image_after_delta_layers = 3\nimage_layer_max_pages = 8\nbackground_tick_ms = 50\n\
    pitr_lsn_window = 0\n";

/// Reads `samples` random (page, LSN) pairs plus every page at the newest LSN, and compares
/// them with the model.
fn verify(reader: &mut Client, model: &Model, rng: &mut Rng, samples: usize) {
    let lsns = model.lsns();
    let keys: Vec<_> = model.keys().collect();
    let last = *lsns.last().unwrap();
    let mut probes: Vec<(wal::PageKey, Lsn)> = keys.iter().map(|k| (*k, last)).collect();
    for _ in 0..samples {
        let lsn = lsns[rng.below(lsns.len() as u64) as usize];
        probes.push((keys[rng.below(keys.len() as u64) as usize], lsn));
    }
    for (key, lsn) in probes {
        let got = reader.get_page(key, lsn, lsn);
        match model.page_at(key, lsn) {
            Some(page) => {
                let got = got.unwrap_or_else(|e| panic!("{key} at {lsn}: {e}"));
                assert!(got[..] == page[..], "{key} at {lsn} differs from the model");
            }
            None => assert!(got.is_err(), "{key} at {lsn} must not exist"),
        }
    }
}

fn wal_segments(server: &TestServer, tenant: TenantId, timeline: TimelineId) -> usize {
    std::fs::read_dir(server.timeline_dir(tenant, timeline).join("wal")).unwrap().count()
}

#[test]
fn reads_stay_right_across_flushes_images_and_restarts() {
    let mut rng = Rng::from_env("reads_stay_right_across_flushes_images_and_restarts");
    let mut server = TestServer::start_with(1, SMALL_STORE);
    let (tenant, timeline) = server.create_tenant();
    let tenant = tenant.tenant_id;
    let mut model = Model::default();
    let mut lsn = 0x100;
    for round in 0..12 {
        let mut writer = server.connect(Role::Writer, tenant, timeline, 1);
        for _ in 0..6 {
            let batch = random_batch(&mut rng, &mut lsn, 24, 8);
            writer.append_wal(&batch).unwrap();
            model.add(&batch);
        }
        match rng.below(4) {
            0 => drop(server.store_op(tenant, timeline, "flush")),
            1 => drop(server.store_op(tenant, timeline, "compact")),
            _ => std::thread::sleep(Duration::from_millis(60)),
        }
        if round % 4 == 3 {
            drop(writer);
            if rng.below(2) == 0 {
                server.restart_clean()
            } else {
                server.restart_after_kill9()
            }
        }
        let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
        verify(&mut reader, &model, &mut rng, 40);
    }
    let info = server.store_op(tenant, timeline, "compact");
    assert!(info["delta_layers"].as_u64().unwrap() >= 1, "{info}"); // older ones merged
    assert!(info["image_layers"].as_u64().unwrap() >= 1, "{info}");
    assert!(info["index_bytes_per_version"].as_f64().unwrap() > 0.0);
    // Read amplification is bounded: right after an image set, a read needs at most the image.
    let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
    let before = server.timeline_info(tenant, timeline);
    verify(&mut reader, &model, &mut rng, 0);
    let after = server.timeline_info(tenant, timeline);
    let reads = after["reads"].as_u64().unwrap() - before["reads"].as_u64().unwrap();
    assert!(reads > 0);
    assert!(after["read_layers_max"].as_u64().unwrap() <= 3 + 1 + 2, "{after}");
    // WAL below the layers was recycled.
    assert!(wal_segments(&server, tenant, timeline) <= 3, "WAL segments were not recycled");
    server.assert_log_clean(&[]);
}

#[test]
fn kill9_during_flush_and_compaction_loses_nothing() {
    let mut rng = Rng::from_env("kill9_during_flush_and_compaction_loses_nothing");
    let mut server = TestServer::start_with(2, SMALL_STORE);
    let (tenant, timeline) = server.create_tenant();
    let tenant = tenant.tenant_id;
    let mut model = Model::default();
    let mut lsn = 0x100;
    for cycle in 0..6 {
        let mut writer = server.connect(Role::Writer, tenant, timeline, 1);
        lsn = lsn.max(writer.hello().last_lsn);
        // Background flushes and image sets run all the time with these thresholds; the kill
        // lands at a random point in a stream of appends.
        let appends = 5 + rng.below(30);
        let mut in_flight = Vec::new();
        for i in 0..appends {
            let batch = random_batch(&mut rng, &mut lsn, 16, 6);
            if i + 1 == appends {
                // The last batch is sent and the server killed before its answer is read.
                writer.send_append_wal(&batch).unwrap();
                writer.flush().unwrap();
                in_flight = batch;
                std::thread::sleep(Duration::from_micros(rng.below(3000)));
                break;
            }
            writer.append_wal(&batch).unwrap();
            model.add(&batch);
        }
        server.kill9();
        let layer_dir = server.timeline_dir(tenant, timeline).join("layers");
        let leftover: Vec<String> = std::fs::read_dir(&layer_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|name| name.ends_with(".tmp"))
            .collect();
        let removals_before = server.log().matches("removing unfinished layer file").count();
        server.restart_clean_after_stop();
        // Files a killed flush or image write left half-written are removed at start.
        let removals =
            server.log().matches("removing unfinished layer file").count() - removals_before;
        assert_eq!(removals, leftover.len(), "cycle {cycle}: leftover {leftover:?}");
        let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
        let recovered = Lsn(reader.hello().last_lsn);
        let acked = *model.lsns().last().unwrap();
        if recovered != acked {
            assert_eq!(
                recovered,
                in_flight.last().unwrap().lsn,
                "cycle {cycle}: half a batch recovered"
            );
            model.add(&in_flight);
        }
        lsn = recovered.0;
        verify(&mut reader, &model, &mut rng, 30);
    }
}

#[test]
fn a_corrupt_layer_page_is_refused_and_others_still_served() {
    let server = TestServer::start_with(1, SMALL_STORE);
    let (tenant, timeline) = server.create_tenant();
    let (other, other_timeline) = server.create_tenant();
    let tenant = tenant.tenant_id;
    let mut writer = server.connect(Role::Writer, tenant, timeline, 1);
    let records: Vec<_> =
        (0..4).map(|b| crate::support::image(0x10 + u64::from(b), b, u64::from(b))).collect();
    writer.append_wal(&records).unwrap();
    let mut other_writer = server.connect(Role::Writer, other.tenant_id, other_timeline, 1);
    other_writer.append_wal(&records).unwrap();
    server.store_op(tenant, timeline, "flush");
    // Flip one byte inside block 2's image in the delta layer file.
    let layers = server.timeline_dir(tenant, timeline).join("layers");
    let path = std::fs::read_dir(&layers)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().unwrap() == "delta")
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let image_of_block_2 = 4096 + 2 * 8192;
    bytes[image_of_block_2 + 100] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
    let error = reader.get_page(key(2), Lsn(0x13), Lsn(0x13)).unwrap_err();
    assert_eq!(error.status(), Some(Status::Corrupt), "{error}");
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    assert!(error.to_string().contains(&name), "the error names the file: {error}");
    for block in [0, 1, 3] {
        reader.get_page(key(block), Lsn(0x13), Lsn(0x13)).unwrap();
    }
    let mut other_reader = server.connect(Role::Reader, other.tenant_id, other_timeline, 0);
    other_reader.get_page(key(2), Lsn(0x13), Lsn(0x13)).unwrap();
    server.assert_log_clean(&["corrupt data refused"]);
}

#[test]
fn branches_read_through_their_parent_and_write_alone() {
    let mut server = TestServer::start_with(1, SMALL_STORE);
    let (tenant, main) = server.create_tenant();
    let tenant = tenant.tenant_id;
    let mut rng = Rng::from_env("branches_read_through_their_parent_and_write_alone");
    let mut writer = server.connect(Role::Writer, tenant, main, 1);
    let mut parent_model = Model::default();
    let mut lsn = 0x100;
    for _ in 0..10 {
        let batch = random_batch(&mut rng, &mut lsn, 8, 6);
        writer.append_wal(&batch).unwrap();
        parent_model.add(&batch);
    }
    server.store_op(tenant, main, "compact");
    let branch_lsn = Lsn(lsn);
    let url = format!("http://{}/v1/tenants/{tenant}/timelines", server.admin_addr);
    let created: serde_json::Value = serde_json::from_str(
        &ureq::post(&url)
            .send_json(serde_json::json!({"ancestor_timeline_id": main.to_string(), "ancestor_lsn": branch_lsn.to_string()}))
            .unwrap()
            .into_string()
            .unwrap(),
    )
    .unwrap();
    let branch: TimelineId = created["timeline_id"].as_str().unwrap().parse().unwrap();
    // The branch starts as a view of the parent at the branch point.
    let mut child_model = parent_model.clone();
    // Parent and child diverge.
    let mut child_lsn = lsn;
    for _ in 0..5 {
        let batch = random_batch(&mut rng, &mut lsn, 8, 6);
        writer.append_wal(&batch).unwrap();
        parent_model.add(&batch);
    }
    let mut child_writer = server.connect(Role::Writer, tenant, branch, 1);
    for _ in 0..5 {
        let batch = random_batch(&mut rng, &mut child_lsn, 8, 6);
        child_writer.append_wal(&batch).unwrap();
        child_model.add(&batch);
    }
    server.store_op(tenant, branch, "compact");
    for _ in 0..2 {
        let mut parent_reader = server.connect(Role::Reader, tenant, main, 0);
        verify(&mut parent_reader, &parent_model, &mut rng, 40);
        let mut child_reader = server.connect(Role::Reader, tenant, branch, 0);
        verify(&mut child_reader, &child_model, &mut rng, 40);
        // A child write at or below the branch point is refused.
        let error =
            child_writer.append_wal(&[crate::support::image(branch_lsn.0, 0, 1)]).unwrap_err();
        assert_eq!(error.status(), Some(Status::LsnOutOfOrder));
        drop(child_writer);
        server.restart_clean();
        child_writer = server.connect(Role::Writer, tenant, branch, 1);
    }
    assert_eq!(
        server.connect(Role::Reader, tenant, branch, 0).rel_size(REL, branch_lsn).unwrap(),
        server.connect(Role::Reader, tenant, main, 0).rel_size(REL, branch_lsn).unwrap()
    );
    // A branch point beyond the parent's last LSN is refused.
    let beyond = ureq::post(&url).send_json(serde_json::json!({
        "ancestor_timeline_id": main.to_string(), "ancestor_lsn": Lsn(lsn + 0x1000).to_string()
    }));
    assert!(matches!(beyond, Err(ureq::Error::Status(400, _))));
}

#[test]
fn retention_removes_old_layers_and_refuses_old_reads() {
    let store = SMALL_STORE.replace("pitr_lsn_window = 0", "pitr_lsn_window = 4096");
    let mut server = TestServer::start_with(1, &store);
    let (tenant, timeline) = server.create_tenant();
    let tenant = tenant.tenant_id;
    let mut rng = Rng::from_env("retention_removes_old_layers_and_refuses_old_reads");
    let mut writer = server.connect(Role::Writer, tenant, timeline, 1);
    let mut model = Model::default();
    let mut lsn = 0x100;
    for _ in 0..8 {
        for _ in 0..4 {
            let batch = random_batch(&mut rng, &mut lsn, 8, 8);
            writer.append_wal(&batch).unwrap();
            model.add(&batch);
        }
        server.store_op(tenant, timeline, "compact");
    }
    let info = server.store_op(tenant, timeline, "gc");
    assert!(info["gc_removed_layers"].as_u64().unwrap() > 0, "{info}");
    let horizon: Lsn = info["gc_horizon"].as_str().unwrap().parse().unwrap();
    assert_eq!(horizon, Lsn(lsn - 4096));
    let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
    let error = reader.get_page(key(0), Lsn(0x101), Lsn(0x101)).unwrap_err();
    assert_eq!(error.status(), Some(Status::LsnTooOld), "{error}");
    // Everything at or above the horizon is intact, also after a restart.
    for _ in 0..2 {
        let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
        for lsn in model.lsns().into_iter().filter(|l| *l >= horizon) {
            for key in model.keys().collect::<Vec<_>>() {
                if let Some(page) = model.page_at(key, lsn) {
                    assert!(
                        reader.get_page(key, lsn, lsn).unwrap()[..] == page[..],
                        "{key} at {lsn}"
                    );
                }
            }
        }
        server.restart_after_kill9();
    }
}

/// A hot page that only ever receives deltas (pgbench's branches page) must read right at every
/// LSN while its long delta runs are materialised into images, across flushes and restarts.
#[test]
fn a_hot_page_with_only_deltas_reads_right_at_every_lsn() {
    let mut server = TestServer::start_with(1, SMALL_STORE);
    let (tenant, timeline) = server.create_tenant();
    let tenant = tenant.tenant_id;
    let mut writer = server.connect(Role::Writer, tenant, timeline, 1);
    let mut model = Model::default();
    let first = [crate::support::image(0x10, 0, 7)];
    writer.append_wal(&first).unwrap();
    model.add(&first);
    let mut lsn = 0x10;
    for i in 0..300u64 {
        lsn += 1;
        let record = [crate::support::delta(lsn, 0, ((i * 37) % 8000) as u16, &i.to_le_bytes())];
        writer.append_wal(&record).unwrap();
        model.add(&record);
        if i == 150 {
            server.store_op(tenant, timeline, "flush");
        }
    }
    for round in 0..2 {
        let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
        for at in model.lsns() {
            let page = reader.get_page(key(0), at, at).unwrap();
            assert!(page[..] == model.page_at(key(0), at).unwrap()[..], "round {round}: at {at}");
        }
        if round == 0 {
            drop(writer);
            server.restart_after_kill9();
            writer = server.connect(Role::Writer, tenant, timeline, 1);
        }
    }
    drop(writer);
    let info = server.timeline_info(tenant, timeline);
    assert!(info["read_layers_max"].as_u64().unwrap() <= 3, "{info}");
}

/// Retention by time: with a one-second window, versions older than a second stop being served
/// once the background task has sampled the LSN over that second.
#[test]
fn retention_by_time_moves_the_horizon() {
    let store =
        SMALL_STORE.replace("pitr_lsn_window = 0", "pitr_lsn_window = 0\npitr_window_secs = 1");
    let server = TestServer::start_with(1, &store);
    let (tenant, timeline) = server.create_tenant();
    let tenant = tenant.tenant_id;
    let mut writer = server.connect(Role::Writer, tenant, timeline, 1);
    writer.append_wal(&[crate::support::image(0x100, 0, 1)]).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    writer.append_wal(&[crate::support::image(0x200, 0, 2)]).unwrap();
    let info = server.store_op(tenant, timeline, "gc");
    let horizon: Lsn = info["gc_horizon"].as_str().unwrap().parse().unwrap();
    assert!(horizon >= Lsn(0x100) && horizon < Lsn(0x200), "{info}");
    let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
    assert_eq!(
        reader.get_page(key(0), Lsn(0xff), Lsn(0xff)).unwrap_err().status(),
        Some(Status::LsnTooOld)
    );
    assert_eq!(
        reader.get_page(key(0), Lsn(0x200), Lsn(0x200)).unwrap()[0],
        crate::support::image(0, 0, 2).body_first_byte()
    );
}

/// Delta layers below the newest image set are merged (fewer files for point-in-time reads);
/// every version stays readable, and an input a crash left behind is removed at start instead
/// of being read twice.
#[test]
fn old_delta_layers_merge_and_leftover_inputs_are_dropped() {
    let store = SMALL_STORE.replace(
        "image_after_delta_layers = 3",
        "image_after_delta_layers = 2\nmerge_delta_layers_after = 3",
    );
    let mut server = TestServer::start_with(1, &store);
    // A plaintext tenant: the crash is simulated by restoring a deleted input from a copy, and
    // an encrypted tenant shreds a deleted file's key (a real crash before the deletion keeps
    // it; `kill9_during_flush_and_compaction_loses_nothing` covers that).
    let admin = server.admin();
    let tenant = admin.create_tenant_with(None, Some("none"), None).unwrap().tenant_id;
    let timeline = admin.create_timeline(tenant, None).unwrap().timeline_id;
    let mut rng = Rng::from_env("old_delta_layers_merge_and_leftover_inputs_are_dropped");
    let mut writer = server.connect(Role::Writer, tenant, timeline, 1);
    let mut model = Model::default();
    let mut lsn = 0x100;
    let layers_dir = server.timeline_dir(tenant, timeline).join("layers");
    let backup = server.dir.path().join("delta-backup");
    std::fs::create_dir_all(&backup).unwrap();
    for _ in 0..6 {
        for _ in 0..3 {
            let batch = random_batch(&mut rng, &mut lsn, 12, 8);
            writer.append_wal(&batch).unwrap();
            model.add(&batch);
        }
        server.store_op(tenant, timeline, "flush");
        for entry in std::fs::read_dir(&layers_dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "delta") {
                std::fs::copy(&path, backup.join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    server.store_op(tenant, timeline, "compact");
    let info = server.store_op(tenant, timeline, "compact");
    assert!(server.log().contains("delta layers merged"), "{info}");
    let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
    verify(&mut reader, &model, &mut rng, 80);
    // Put one merged input back, as if the merge had crashed before deleting it.
    let present: Vec<_> =
        std::fs::read_dir(&layers_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    let input = std::fs::read_dir(&backup)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !present.contains(&p.file_name().unwrap().to_os_string()))
        .expect("some input was merged away");
    drop((reader, writer));
    server.stop();
    std::fs::copy(&input, layers_dir.join(input.file_name().unwrap())).unwrap();
    server.restart_clean_after_stop();
    assert!(server.log().contains("removing a merged delta layer's leftover input"));
    let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
    for at in model.lsns() {
        for key in model.keys().collect::<Vec<_>>() {
            let expected = model.page_at(key, at);
            let got = reader.get_page(key, at, at);
            match expected {
                Some(page) => assert!(got.unwrap()[..] == page[..], "{key} at {at}"),
                None => assert!(got.is_err()),
            }
        }
    }
}
