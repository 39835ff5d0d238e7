//! Presence, storage and locks on the embedded server: `cargo run -p rtm2-core --example services`.

use rtm2_core::*;

fn main() -> Result<()> {
    block_on(run())
}

async fn run() -> Result<()> {
    const APP: &str = "0123456789abcdef0123456789abcdef";
    let alice = Client::new(ClientConfig::new(APP, "alice"))?;
    let bob = Client::new(ClientConfig::new(APP, "bob"))?;
    alice.login("").await?;
    bob.login("").await?;
    let mut events = alice.events();

    // Presence: state set before subscribing is applied when subscribing.
    bob.presence().set_state("room", ChannelType::MESSAGE, [("mood", "curious")]).await?;
    alice.subscribe("room", SubscribeOptions { with_lock: true, with_metadata: true, ..Default::default() }).await?;
    bob.subscribe("room", SubscribeOptions::default()).await?;
    let who = alice.presence().who_now("room", ChannelType::MESSAGE, GetOnlineUsersOptions::default()).await?;
    println!("in room: {:?}", who.occupants.iter().map(|u| &u.user_id).collect::<Vec<_>>());
    let bob_state = alice.presence().get_state("room", ChannelType::MESSAGE, "bob").await?;
    println!("bob's state: {:?}", bob_state.states);

    // Storage: compare-and-set on the channel's metadata.
    let st = alice.storage();
    let w = st
        .set_channel_metadata(
            "room",
            ChannelType::MESSAGE,
            vec![MetadataItem::new("topic", "rust")],
            Default::default(),
        )
        .await?;
    let stale = MetadataOptions { major_revision: w.major_revision - 1, ..Default::default() };
    let e = st
        .set_channel_metadata("room", ChannelType::MESSAGE, vec![MetadataItem::new("topic", "go")], stale)
        .await
        .unwrap_err();
    println!("stale write: {} ({})", e.code.name(), e.code.code()); // STORAGE_OUTDATED_REVISION (12014)

    // Locks: bob waits in the queue until alice releases.
    let locks = alice.lock();
    locks.set_lock("room", ChannelType::MESSAGE, "mic", 30).await?;
    locks.acquire_lock("room", ChannelType::MESSAGE, "mic", false).await?;
    let waiting = bob.lock().acquire_lock("room", ChannelType::MESSAGE, "mic", true);
    let waiter = runtime().spawn(waiting);
    locks.release_lock("room", ChannelType::MESSAGE, "mic").await?;
    waiter.await.expect("the waiter ran")?;
    println!("mic owner: {}", locks.get_locks("room", ChannelType::MESSAGE).await?[0].owner);

    // Events seen by alice (she subscribed with presence, metadata and lock events).
    while let Some(ev) = events.try_recv_batch(1).pop() {
        match ev {
            Event::Presence(p) => println!("presence {} {}", p.event_type.name(), p.publisher),
            Event::Storage(s) => println!("storage {} revision {}", s.event_type.name(), s.data.major_revision),
            Event::Lock(l) => println!("lock {} {} {}", l.event_type.name(), l.lock_name, l.owner),
            _ => {}
        }
    }
    Ok(())
}
