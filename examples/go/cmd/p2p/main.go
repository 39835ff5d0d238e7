// Command p2p is the peer-to-peer flow of the Agora RTM 2 Go SDK's README, on rtm2: the local
// user publishes a message to a remote user id once every -interval, with
// WithMessageChannelType(ChannelTypeUser); messages sent to a user arrive on the message
// channel its Login returned.
//
// By default the remote user runs in this process too (-serve-remote) and answers every
// message; it exits once the local user got -messages answers (or after -duration). With
// -serve-remote=false the remote user is someone else (e.g. another p2p process with -user
// and -remote swapped, against the same `rtm2 serve`); while it is offline, publishing fails
// with 11033 ERROR_CHANNEL_RECEIVER_OFFLINE; the program ends once its messages are answered
// and it answered as many of the remote's.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"rtm2.local/rtm2"
)

var (
	endpoint    = flag.String("endpoint", "", `rtm2 server: "" = the server embedded in this process, or tcp://host:port of rtm2 serve`)
	appID       = flag.String("appid", "970CA35de60c44645bbae8a215061b33", "app id (32 hex characters)")
	cert        = flag.String("cert", "", "app certificate of the server: tokens are built with it (empty: no tokens)")
	user        = flag.String("user", "local", "user id of this side")
	remote      = flag.String("remote", "remote", "user id to send to")
	serveRemote = flag.Bool("serve-remote", true, "also run the remote user in this process (it answers every message)")
	messages    = flag.Int("messages", 3, "messages to send (the program ends when all are answered)")
	interval    = flag.Duration("interval", time.Second, "time between two messages")
	duration    = flag.Duration("duration", 30*time.Second, "give up after this long")
)

const prefix = "message-p2p-message-"

func main() {
	flag.Parse()
	lcfg := zap.NewDevelopmentConfig()
	lcfg.Level.SetLevel(zapcore.InfoLevel)
	lg, _ := lcfg.Build()
	defer func() { _ = lg.Sync() }()

	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	if err := run(ctx, lg); err != nil {
		fmt.Fprintln(os.Stderr, "p2p:", err)
		cancel()
		os.Exit(1)
	}
	fmt.Println("done")
}

// login creates a client for userID and logs it in; it returns the peer-to-peer messages.
func login(ctx context.Context, lg *zap.Logger, userID string) (rtm2.RTMClient, <-chan *rtm2.Message, <-chan error, error) {
	config := rtm2.RTMConfig{Appid: *appID, UserId: userID, Logger: lg, Endpoint: *endpoint}
	errChan := make(chan error, 1)
	client := rtm2.CreateRTM2Client(ctx, config, errChan)
	token := ""
	if *cert != "" {
		var err error
		if token, err = rtm2.BuildToken(*appID, *cert, userID, 3600); err != nil {
			return nil, nil, nil, err
		}
	}
	_, _, messageChan, err := client.Login(token)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("login %s: %w", userID, err)
	}
	fmt.Printf("%s logged in\n", userID)
	return client, messageChan, errChan, nil
}

// answer publishes to from an answer to every numbered message that arrives.
func answer(ctx context.Context, client rtm2.RTMClient, self string, messageChan <-chan *rtm2.Message) {
	for {
		select {
		case msg := <-messageChan:
			text := string(msg.Message)
			fmt.Printf("%s received from %s: %s\n", self, msg.UserId, text)
			if !strings.HasPrefix(text, prefix) {
				continue
			}
			reply := "answer-to-" + text
			if err := client.Publish(msg.UserId, []byte(reply), rtm2.WithMessageType(rtm2.MessageTypeString),
				rtm2.WithMessageChannelType(rtm2.ChannelTypeUser)); err != nil {
				fmt.Printf("%s could not answer %s: %v\n", self, msg.UserId, err)
			}
		case <-ctx.Done():
			return
		}
	}
}

func run(ctx context.Context, lg *zap.Logger) error {
	if *serveRemote {
		remoteClient, remoteMessages, _, err := login(ctx, lg, *remote)
		if err != nil {
			return err
		}
		defer func() { _ = remoteClient.Logout() }()
		go answer(ctx, remoteClient, *remote, remoteMessages)
	}
	client, messageChan, errChan, err := login(ctx, lg, *user)
	if err != nil {
		return err
	}
	defer func() { _ = client.Logout() }()

	// Receive: the answers to our messages (and, from another p2p process, its messages).
	answers := make(chan string, *messages)
	given := make(chan struct{}, *messages)
	go func() {
		for {
			select {
			case err := <-errChan:
				fmt.Printf("%s: error from errChan: %v\n", *user, err)
			case msg := <-messageChan:
				text := string(msg.Message)
				fmt.Printf("%s received from %s: %s\n", *user, msg.UserId, text)
				switch {
				case strings.HasPrefix(text, "answer-to-"+prefix):
					select {
					case answers <- text:
					default:
					}
				case strings.HasPrefix(text, prefix):
					if err := client.Publish(msg.UserId, []byte("answer-to-"+text), rtm2.WithMessageType(rtm2.MessageTypeString),
						rtm2.WithMessageChannelType(rtm2.ChannelTypeUser)); err != nil {
						fmt.Printf("%s could not answer %s: %v\n", *user, msg.UserId, err)
						continue
					}
					select {
					case given <- struct{}{}:
					default:
					}
				}
			case <-ctx.Done():
				return
			}
		}
	}()

	// Send: one message every interval, to the remote user id.
	ticker := time.NewTicker(*interval)
	defer ticker.Stop()
	// Done when our messages are answered and, when the remote user is another p2p process,
	// when we answered as many of its messages (so that it gets its answers too).
	sent, answered, gave := 0, 0, 0
	for answered < *messages || (!*serveRemote && gave < *messages) {
		select {
		case <-ticker.C:
			if sent == *messages {
				continue
			}
			message := prefix + strconv.Itoa(sent)
			err := client.Publish(*remote, []byte(message), rtm2.WithMessageType(rtm2.MessageTypeString),
				rtm2.WithMessageChannelType(rtm2.ChannelTypeUser))
			switch {
			case err == rtm2.ERROR_CHANNEL_RECEIVER_OFFLINE:
				fmt.Printf("%s is offline (%v); trying again\n", *remote, err)
			case err != nil:
				return fmt.Errorf("publish to %s: %w", *remote, err)
			default:
				fmt.Printf("%s sent to %s: %s\n", *user, *remote, message)
				sent++
			}
		case <-answers:
			answered++
		case <-given:
			gave++
		case <-ctx.Done():
			return fmt.Errorf("%d of %d messages answered within %s", answered, *messages, *duration)
		}
	}
	return nil
}
