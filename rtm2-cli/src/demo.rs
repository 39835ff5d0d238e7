//! `rtm2 demo`: two users on the embedded server, nothing to install or start.

use rtm2_core::*;

use crate::{DEV_APP_ID, describe};

async fn next_message(events: &mut EventReceiver) -> Result<MessageEvent> {
    let wait = std::time::Duration::from_secs(10);
    loop {
        match tokio::time::timeout(wait, events.recv()).await {
            Ok(Some(Event::Message(m))) => return Ok((*m).clone()),
            Ok(Some(_)) => continue,
            _ => return Err(Error::new(ErrorCode::NOT_CONNECTED, "demo", "no message arrived")),
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
        Ok(()) => println!("to carol:  delivered?!"),
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
    alice.logout().await?;
    bob.logout().await?;
    println!("\ndone: both users logged out");
    Ok(())
}
