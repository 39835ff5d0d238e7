//! `rtm2 demo`: two users on the embedded server, nothing to install or start.

use rtm2_core::*;

use crate::{DEV_APP_ID, describe};

async fn next_message(events: &mut EventReceiver) -> Result<MessageEvent> {
    let wait = std::time::Duration::from_secs(10);
    loop {
        match tokio::time::timeout(wait, events.recv()).await {
            Ok(Some(Event::Message(m))) => return Ok(m),
            Ok(Some(_)) => continue,
            _ => return Err(Error::new(ErrorCode::NOT_CONNECTED, "demo", "no message arrived")),
        }
    }
}

/// The next event `pick` selects (others skipped), bounded.
async fn next_event<T>(events: &mut EventReceiver, mut pick: impl FnMut(Event) -> Option<T>) -> Result<T> {
    let wait = std::time::Duration::from_secs(10);
    loop {
        match tokio::time::timeout(wait, events.recv()).await {
            Ok(Some(ev)) => {
                if let Some(v) = pick(ev) {
                    return Ok(v);
                }
            }
            _ => return Err(Error::new(ErrorCode::NOT_CONNECTED, "demo", "the expected event did not arrive")),
        }
    }
}

pub async fn run() -> Result<()> {
    println!("rtm2 demo: alice and bob on the embedded server (development mode, no token needed)\n");
    let alice = Client::new(ClientConfig::new(DEV_APP_ID, "alice"))?;
    let bob = Client::new(ClientConfig::new(DEV_APP_ID, "bob"))?;
    let mut bob_events = bob.events();
    let mut alice_events = alice.events();
    alice.login("").await?;
    bob.login("").await?;
    println!("alice and bob logged in");

    // Message channel.
    bob.subscribe("lobby", SubscribeOptions::default()).await?;
    alice.publish("lobby", "hello, lobby!", PublishOptions::default().custom_type("greeting")).await?;
    println!("bob got    {}", describe(&next_message(&mut bob_events).await?));

    // Peer to peer.
    bob.publish("alice", "hi alice, this is just for you", PublishOptions::user()).await?;
    println!("alice got  {}", describe(&next_message(&mut alice_events).await?));
    match alice.publish("carol", "are you there?", PublishOptions::user()).await {
        Err(e) => println!("to carol:  {} ({})", e.code.name(), e.code.code()),
        Ok(_) => println!("to carol:  delivered?!"),
    }

    // Stream channel with a topic.
    let stage_a = alice.stream_channel("stage")?;
    let stage_b = bob.stream_channel("stage")?;
    stage_a.join(JoinOptions::default()).await?;
    stage_a.join_topic("slides", JoinTopicOptions { meta: "presenter".into(), ..Default::default() }).await?;
    let joined = stage_b.join(JoinOptions::default()).await?;
    for t in &joined.topics {
        let who: Vec<&str> = t.publishers.iter().map(|p| p.user_id.as_str()).collect();
        println!("bob joined stage: topic {:?} published by {:?}", t.topic, who);
    }
    let r = stage_b.subscribe_topic("slides", &[]).await?;
    println!("bob subscribed to {:?} in slides", r.succeeded);
    stage_a.publish_topic("slides", "slide 1: why rtm2", TopicMessageOptions::default()).await?;
    println!("bob got    {}", describe(&next_message(&mut bob_events).await?));

    stage_b.leave().await?;
    stage_a.leave().await?;

    // Presence, storage and locks in the lobby (bob subscribed with metadata and lock events).
    println!();
    let all = SubscribeOptions { with_metadata: true, with_lock: true, ..Default::default() };
    bob.subscribe("lobby", all).await?;
    alice.presence().set_state("lobby", ChannelType::MESSAGE, [("mood", "excited")]).await?;
    alice.subscribe("lobby", SubscribeOptions::default()).await?;
    let joined = next_event(&mut bob_events, |e| match e {
        Event::Presence(p) if p.event_type == PresenceEventType::REMOTE_STATE_CHANGED => Some(p),
        _ => None,
    })
    .await?;
    println!("bob saw    {} in lobby with state {:?}", joined.publisher, joined.states);
    let who = bob.presence().who_now("lobby", ChannelType::MESSAGE, GetOnlineUsersOptions::default()).await?;
    println!("who is in lobby: {:?}", who.occupants.iter().map(|u| u.user_id.as_str()).collect::<Vec<_>>());
    let topic = vec![MetadataItem::new("topic", "rtm2 demo")];
    let w =
        alice.storage().set_channel_metadata("lobby", ChannelType::MESSAGE, topic, MetadataOptions::default()).await?;
    let update = next_event(&mut bob_events, |e| match e {
        Event::Storage(s) if s.event_type == StorageEventType::UPDATE => Some(s),
        _ => None,
    })
    .await?;
    println!(
        "bob got    lobby metadata topic = {:?} (revision {})",
        update.data.get("topic").map_or("", |i| i.value.as_str()),
        w.major_revision
    );
    let stale = MetadataOptions { major_revision: w.major_revision - 1, ..Default::default() };
    let e = bob
        .storage()
        .set_channel_metadata("lobby", ChannelType::MESSAGE, vec![MetadataItem::new("topic", "mine")], stale)
        .await
        .expect_err("a stale write must fail");
    println!("bob's stale write: {} ({})", e.code.name(), e.code.code());
    alice.lock().set_lock("lobby", ChannelType::MESSAGE, "microphone", 30).await?;
    alice.lock().acquire_lock("lobby", ChannelType::MESSAGE, "microphone", false).await?;
    let waiting = runtime().spawn(bob.lock().acquire_lock("lobby", ChannelType::MESSAGE, "microphone", true));
    alice.lock().release_lock("lobby", ChannelType::MESSAGE, "microphone").await?;
    waiting.await.map_err(|_| Error::new(ErrorCode::NOT_CONNECTED, "demo", "the waiter stopped"))??;
    let owner = next_event(&mut bob_events, |e| match e {
        Event::Lock(l) if l.event_type == LockEventType::ACQUIRED && l.owner == "bob" => Some(l),
        _ => None,
    })
    .await?;
    println!("bob waited for the {} and got it", owner.lock_name);

    alice.logout().await?;
    bob.logout().await?;
    println!("\ndone: both users logged out");
    Ok(())
}
