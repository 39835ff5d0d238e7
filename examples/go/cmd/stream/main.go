// Command stream is the stream channel flow of the Agora RTM 2 Go SDK's README, on rtm2: a
// publisher joins the stream channel "MyChannel" and its topic "MyTopic" and publishes
// "Hello world!\0"; a second client joins the channel, subscribes to the publisher in that
// topic and prints what it receives; then both unsubscribe, leave and log out.
//
// It runs against the server embedded in the process by default (both clients share it), or
// against `rtm2 serve` with -endpoint (and -cert when the server has an app certificate), and
// exits when the flow is done (or after -duration).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"rtm2.local/rtm2"
)

var (
	endpoint = flag.String("endpoint", "", `rtm2 server: "" = the server embedded in this process, or tcp://host:port of rtm2 serve`)
	appID    = flag.String("appid", "970CA35de60c44645bbae8a215061b33", "app id (32 hex characters)")
	cert     = flag.String("cert", "", "app certificate of the server: tokens are built with it (empty: no tokens)")
	user     = flag.String("user", "alice", "user id of the publisher")
	other    = flag.String("other", "bob", "user id of the subscriber")
	name     = flag.String("channel", "MyChannel", "stream channel")
	topic    = flag.String("topic", "MyTopic", "topic")
	duration = flag.Duration("duration", 30*time.Second, "give up after this long")
)

func main() {
	flag.Parse()
	lcfg := zap.NewDevelopmentConfig()
	lcfg.Level.SetLevel(zapcore.InfoLevel)
	lg, _ := lcfg.Build()
	defer func() { _ = lg.Sync() }()

	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	if err := run(ctx, lg); err != nil {
		fmt.Fprintln(os.Stderr, "stream:", err)
		cancel()
		os.Exit(1)
	}
	fmt.Println("done")
}

// login creates a client for userID and logs it in.
func login(ctx context.Context, lg *zap.Logger, userID string) (rtm2.RTMClient, error) {
	config := rtm2.RTMConfig{Appid: *appID, UserId: userID, Logger: lg, Endpoint: *endpoint}
	errChan := make(chan error, 1)
	client := rtm2.CreateRTM2Client(ctx, config, errChan)
	token := ""
	if *cert != "" {
		var err error
		if token, err = rtm2.BuildToken(*appID, *cert, userID, 3600); err != nil {
			return nil, err
		}
	}
	if _, _, _, err := client.Login(token); err != nil {
		return nil, fmt.Errorf("login %s: %w", userID, err)
	}
	fmt.Printf("%s logged in\n", userID)
	return client, nil
}

// joinOptions: with app certificates, a stream channel is joined with a token of that channel.
func joinOptions(userID string) ([]rtm2.StreamOption, error) {
	if *cert == "" {
		return nil, nil
	}
	token, err := rtm2.BuildStreamToken(*appID, *cert, *name, userID, 3600)
	if err != nil {
		return nil, err
	}
	return []rtm2.StreamOption{rtm2.WithStreamToken(token)}, nil
}

func run(ctx context.Context, lg *zap.Logger) error {
	// The publisher: create the stream channel, join it, join the topic.
	client, err := login(ctx, lg, *user)
	if err != nil {
		return err
	}
	channel := client.StreamChannel(*name)
	opts, err := joinOptions(*user)
	if err != nil {
		return err
	}
	snapshot, _, _, err := channel.Join(opts...)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	fmt.Printf("%s joined %s (topics: %v)\n", *user, channel.ChannelName(), snapshot)
	if err := channel.JoinTopic(*topic); err != nil {
		return fmt.Errorf("join topic: %w", err)
	}
	fmt.Printf("%s joined topic %s\n", *user, *topic)

	// The subscriber: join the channel, subscribe to the publisher in the topic.
	subscriber, err := login(ctx, lg, *other)
	if err != nil {
		return err
	}
	subChannel := subscriber.StreamChannel(*name)
	if opts, err = joinOptions(*other); err != nil {
		return err
	}
	snapshot, _, _, err = subChannel.Join(opts...)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	fmt.Printf("%s joined %s (topics: %v)\n", *other, subChannel.ChannelName(), snapshot)
	messageChan, err := subChannel.SubscribeTopic(*topic, []string{*user})
	if err != nil {
		return fmt.Errorf("subscribe topic: %w", err)
	}
	// Receive in a goroutine, as the SDK's README does; it ends with the context.
	received := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case msg := <-messageChan:
				fmt.Printf("%s received from %s: %q\n", *other, msg.UserId, msg.Message)
				select {
				case received <- struct{}{}:
				default:
				}
			case <-ctx.Done():
				return
			}
		}
	}()

	if err := channel.PublishTopic(*topic, []byte("Hello world!\x00")); err != nil {
		return fmt.Errorf("publish topic: %w", err)
	}
	fmt.Printf("%s published to %s\n", *user, *topic)
	select {
	case <-received:
	case <-ctx.Done():
		return fmt.Errorf("no message received within %s", *duration)
	}

	users, err := subChannel.GetSubscribedUsers(*topic)
	if err != nil {
		return fmt.Errorf("get subscribed users: %w", err)
	}
	fmt.Printf("%s is subscribed in %s to %v\n", *other, *topic, users)
	if err := subChannel.UnsubscribeTopic(*topic, []string{*user}); err != nil {
		return fmt.Errorf("unsubscribe topic: %w", err)
	}
	fmt.Printf("%s unsubscribed from %s in %s\n", *other, *user, *topic)

	// Leave the topic, leave the channel, log out.
	if err := channel.LeaveTopic(*topic); err != nil {
		return fmt.Errorf("leave topic: %w", err)
	}
	if err := channel.Leave(); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	if err := subChannel.Leave(); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	fmt.Println("both left", *name)
	if err := client.Logout(); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	if err := subscriber.Logout(); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	fmt.Println("both logged out")
	return nil
}
