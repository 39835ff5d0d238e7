// Command recover is the error-handling loop of the Agora RTM 2 Go SDK's README, on rtm2: it
// watches the connection events, the errChan of CreateRTM2Client and the token-will-expire
// events (renewing the login token with RenewToken), subscribes to its own user metadata and
// sets it once every -interval (SetUserMetadata with WithStorageMajorRev(-1),
// WithStorageRecordAuthor and WithStorageRecordTs), and recreates the client when it FAILS.
//
// To show the recovery, after -writes writes of every round but the last, a second client
// logs in with the same user id: the server takes the user id over, the first client FAILS
// (SAME_UID_LOGIN, on its connection events and on errChan), and the loop makes a new one.
// The program ends after -rounds rounds (or after -duration).
//
// With -endpoint and -cert (a server with an app certificate) the login tokens live
// -token-secs seconds; the server's "token will expire" notice makes the loop renew them.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"rtm2.local/rtm2"
)

var (
	endpoint  = flag.String("endpoint", "", `rtm2 server: "" = the server embedded in this process, or tcp://host:port of rtm2 serve`)
	appID     = flag.String("appid", "970CA35de60c44645bbae8a215061b33", "app id (32 hex characters)")
	cert      = flag.String("cert", "", "app certificate of the server: tokens are built with it (empty: no tokens)")
	uid       = flag.String("user", "uid", "user id")
	tokenSecs = flag.Uint("token-secs", 60, "lifetime of each login token, seconds (with -cert)")
	rounds    = flag.Int("rounds", 2, "clients to make: every round but the last ends with the client FAILED")
	writes    = flag.Int("writes", 3, "metadata writes per round")
	interval  = flag.Duration("interval", time.Second, "time between two metadata writes")
	duration  = flag.Duration("duration", time.Minute, "give up after this long")
	logPath   = flag.String("log", "", "the SDK's log file (RTMConfig.FilePath)")
)

// Names of the connection states, for printing.
var stateNames = map[int32]string{
	rtm2.ConnectionStateDISCONNECTED: "DISCONNECTED",
	rtm2.ConnectionStateCONNECTING:   "CONNECTING",
	rtm2.ConnectionStateCONNECTED:    "CONNECTED",
	rtm2.ConnectionStateRECONNECTING: "RECONNECTING",
	rtm2.ConnectionStateFAILED:       "FAILED",
}

// Names of the storage event types, for printing.
var storageEventNames = map[rtm2.StorageEventType]string{
	rtm2.StorageTypeSnapshot: "SNAPSHOT",
	rtm2.StorageTypeSet:      "SET",
	rtm2.StorageTypeUpdate:   "UPDATE",
	rtm2.StorageTypeRemove:   "REMOVE",
}

// genToken is a login token of the user ("" when the server checks no tokens).
func genToken() string {
	if *cert == "" {
		return ""
	}
	token, err := rtm2.BuildToken(*appID, *cert, *uid, uint32(*tokenSecs))
	if err != nil {
		fmt.Fprintln(os.Stderr, "recover: build token:", err)
		os.Exit(1)
	}
	return token
}

func main() {
	flag.Parse()
	lcfg := zap.NewDevelopmentConfig()
	lcfg.Level.SetLevel(zapcore.InfoLevel)
	lg, _ := lcfg.Build()
	defer func() { _ = lg.Sync() }()

	root, stop := context.WithTimeout(context.Background(), *duration)
	defer stop()
	config := rtm2.RTMConfig{
		Appid:    *appID,
		UserId:   *uid,
		Logger:   lg,
		FilePath: *logPath,
		Endpoint: *endpoint,
		// RequestTimeout: 15 * 1000, // request timeout, ms (default 10 s)
	}
	for round := 1; ; round++ {
		if root.Err() != nil {
			fmt.Fprintf(os.Stderr, "recover: gave up after %s in round %d\n", *duration, round)
			os.Exit(1)
		}
		ctx, cancel := context.WithCancel(root)
		errChan := make(chan error, 10)
		client := rtm2.CreateRTM2Client(ctx, config, errChan)
		connectionStateChannel, tc, _, err := client.Login(genToken())
		if err != nil {
			fmt.Printf("round %d: login failed: %v\n", round, err)
			cancel()
			select {
			case <-time.After(*interval):
			case <-root.Done():
			}
			continue
		}
		fmt.Printf("round %d: logged in\n", round)

		// Watch the connection events, errChan and the token-will-expire events.
		go func() {
			for {
				select {
				case eve := <-connectionStateChannel:
					fmt.Printf("round %d: connection state %s, reason %d\n", round, stateNames[eve.State], eve.Reason)
					if eve.State == rtm2.ConnectionStateFAILED {
						// The client cannot recover by itself: log out and make a new one.
						// (errChan says so too, with the server's words.)
						select {
						case err := <-errChan:
							fmt.Printf("round %d: errChan: %v\n", round, err)
						case <-time.After(time.Second):
						}
						_ = client.Logout()
						cancel()
						return
					}
				case err := <-errChan:
					fmt.Printf("round %d: error from errChan, recreating the client: %v\n", round, err)
					_ = client.Logout()
					cancel()
					return
				case channel := <-tc:
					// "" is the login token; otherwise the token of that stream channel.
					fmt.Printf("round %d: token will expire (channel %q)\n", round, channel)
					if err := client.RenewToken(genToken()); err != nil {
						fmt.Printf("round %d: renew token failed: %v\n", round, err)
					} else {
						fmt.Printf("round %d: renewed the login token\n", round)
					}
				case <-ctx.Done():
					return
				}
			}
		}()

		// The application's work: its own user metadata.
		_, c, err := client.Storage().SubscribeUserMetadata(*uid)
		if err != nil {
			fmt.Printf("round %d: subscribe user metadata failed: %v\n", round, err)
			_ = client.Logout()
			cancel()
			continue
		}
		last := round == *rounds
		setTimer := time.NewTimer(*interval)
		cnt := 0
		var intruder rtm2.RTMClient
		var stopIntruder context.CancelFunc
		for quit := false; !quit; {
			select {
			case <-ctx.Done():
				// After a logout every Go channel of the client is done with: subscribe again.
				fmt.Printf("round %d: the client is gone\n", round)
				quit = true
			case eve := <-c:
				if item := eve.Items["name"]; item != nil {
					fmt.Printf("round %d: user metadata event %s: name=%s author=%s recorded=%t\n",
						round, storageEventNames[eve.EventType], item.Value, item.Author, item.UpdateTs > 0)
				}
			case <-setTimer.C:
				if cnt == *writes {
					if last {
						_ = client.Logout()
						cancel()
						fmt.Printf("done after %d rounds\n", round)
						return
					}
					// The same user id logs in elsewhere: this client FAILS.
					ictx, icancel := context.WithCancel(root)
					intruder, stopIntruder = rtm2.CreateRTM2Client(ictx, config, nil), icancel
					if _, _, _, err := intruder.Login(genToken()); err != nil {
						fmt.Printf("round %d: the second login failed: %v\n", round, err)
					} else {
						fmt.Printf("round %d: %s logged in elsewhere\n", round, *uid)
					}
					continue
				}
				data := map[string]*rtm2.MetadataItem{
					"name": {
						Key:      "name",
						Value:    *uid + strconv.Itoa(cnt),
						Revision: -1,
					},
				}
				if err := client.Storage().SetUserMetadata(*uid, data, rtm2.WithStorageMajorRev(-1),
					rtm2.WithStorageRecordAuthor(true), rtm2.WithStorageRecordTs(true)); err != nil {
					fmt.Printf("round %d: set user metadata failed: %v\n", round, err)
				} else {
					fmt.Printf("round %d: set user metadata %s\n", round, data["name"].Value)
				}
				cnt++
				setTimer.Reset(*interval)
			}
		}
		setTimer.Stop()
		if intruder != nil {
			_ = intruder.Logout()
			stopIntruder()
		}
	}
}
