package rtm2

import (
	"bytes"
	"fmt"
	"testing"
)

// Stored publishes come back newest first a page at a time (newStart until 0), unstored ones
// never; a user channel's history is its own user's (15004 for another's); 15002 for an
// invalid range; an offline receiver's message is stored (11035) and readable once it logs in.
func TestHistory(t *testing.T) {
	for _, w := range places(t) {
		t.Run(w.name, func(t *testing.T) {
			aliceID, bobID, carolID := uniq("alice"), uniq("bob"), uniq("carol")
			alice, _, _, _ := loggedIn(t, w, aliceID)
			bob, _, _, bobP2P := loggedIn(t, w, bobID)
			room := uniq("room")
			msgs := subscribed(t, bob, room)

			// Nothing stored yet: an empty page.
			got, next, err := GetMessages(bob, room, ChannelTypeMessage)
			if err != nil || len(got) != 0 || next != 0 {
				t.Fatalf("empty history: %v, %d, %v", got, next, err)
			}
			for i := 0; i < 5; i++ {
				opts := []MessageOption{WithMessageStoreInHistory(true)}
				if i == 4 {
					opts = append(opts, WithMessageCustomType("last"))
				}
				publishText(t, alice, room, fmt.Sprintf("m%d", i), opts...)
				publishText(t, alice, room, "unstored")
			}
			delivered := recv(t, msgs, "channel messages")
			if string(delivered.Message) != "m0" {
				t.Fatalf("first delivered %q", delivered.Message)
			}

			// Pages of 2: m4 m3 | m2 m1 | m0.
			var all []*HistoryMessage
			start := uint64(0)
			for _, want := range [][]string{{"m4", "m3"}, {"m2", "m1"}, {"m0"}} {
				page, next, err := GetMessages(bob, room, ChannelTypeMessage, WithHistoryCount(2), WithHistoryStart(start))
				if err != nil {
					t.Fatal(err)
				}
				if len(page) != len(want) {
					t.Fatalf("page %v, want %v", page, want)
				}
				for i, m := range page {
					if string(m.Message) != want[i] || m.UserId != aliceID || m.Type != MessageTypeString {
						t.Fatalf("message %d of the page: %+v, want %s", i, m, want[i])
					}
				}
				all = append(all, page...)
				if want[len(want)-1] == "m0" {
					if next != 0 {
						t.Fatalf("last page: newStart %d", next)
					}
				} else if next == 0 {
					t.Fatalf("page %v: newStart 0", want)
				}
				start = next
			}
			for i := 1; i < len(all); i++ {
				if all[i].Timestamp >= all[i-1].Timestamp || all[i].Timestamp == 0 {
					t.Fatalf("timestamps not strictly decreasing: %+v", all)
				}
			}
			if all[0].CustomType != "last" || all[1].CustomType != "" {
				t.Fatalf("custom types %q %q", all[0].CustomType, all[1].CustomType)
			}
			newest, oldest := all[0].Timestamp, all[4].Timestamp
			// One page of everything: the stored five only.
			if page, _, err := GetMessages(alice, room, ChannelTypeMessage); err != nil || len(page) != 5 {
				t.Fatalf("all: %d messages, %v", len(page), err)
			}
			// End is inclusive, start exclusive.
			page, _, err := GetMessages(alice, room, ChannelTypeMessage, WithHistoryStart(newest), WithHistoryEnd(oldest))
			if err != nil || len(page) != 4 || string(page[3].Message) != "m0" {
				t.Fatalf("range: %v, %v", page, err)
			}
			// Invalid ranges and channel types.
			_, _, err = GetMessages(alice, room, ChannelTypeMessage, WithHistoryStart(oldest), WithHistoryEnd(newest))
			expectCode(t, err, ERROR_HISTORY_INVALID_TIMESTAMP)
			_, _, err = GetMessages(alice, room, ChannelTypeMessage, WithHistoryStart(newest), WithHistoryEnd(newest))
			expectCode(t, err, ERROR_HISTORY_INVALID_TIMESTAMP)
			_, _, err = GetMessages(alice, room, ChannelTypeStream)
			expectCode(t, err, ERROR_INVALID_CHANNEL_TYPE)
			_, _, err = GetMessages(alice, "a/b", ChannelTypeMessage)
			expectCode(t, err, ERROR_INVALID_CHANNEL_NAME)

			// A user channel: stored for its user, readable by that user only.
			bin := []byte{1, 2, 3}
			if err := alice.Publish(bobID, bin, WithMessageChannelType(ChannelTypeUser), WithMessageStoreInHistory(true)); err != nil {
				t.Fatal(err)
			}
			if m := recv(t, bobP2P, "peer-to-peer messages"); !bytes.Equal(m.Message, bin) {
				t.Fatalf("p2p %+v", m)
			}
			mine, _, err := GetMessages(bob, bobID, ChannelTypeUser)
			if err != nil || len(mine) != 1 || !bytes.Equal(mine[0].Message, bin) || mine[0].Type != MessageTypeBinary || mine[0].UserId != aliceID {
				t.Fatalf("bob's history: %v, %v", mine, err)
			}
			_, _, err = GetMessages(alice, bobID, ChannelTypeUser)
			expectCode(t, err, ERROR_HISTORY_OPERATION_NOT_PERMITTED)

			// An offline receiver: stored (11035), readable once it logs in; unstored: 11033.
			err = alice.Publish(carolID, []byte("later"), WithMessageType(MessageTypeString), WithMessageChannelType(ChannelTypeUser), WithMessageStoreInHistory(true))
			expectCode(t, err, ERROR_CHANNEL_RECEIVER_OFFLINE_BUT_STORE_SUCCEEDED)
			err = alice.Publish(carolID, []byte("gone"), WithMessageChannelType(ChannelTypeUser))
			expectCode(t, err, ERROR_CHANNEL_RECEIVER_OFFLINE)
			carol, _, _, _ := loggedIn(t, w, carolID)
			hers, next, err := GetMessages(carol, carolID, ChannelTypeUser)
			if err != nil || next != 0 || len(hers) != 1 || string(hers[0].Message) != "later" || hers[0].UserId != aliceID {
				t.Fatalf("carol's history: %v, %d, %v", hers, next, err)
			}
		})
	}
}

// GetMessages of a client this package did not make: ERROR_INVALID_PARAMETER.
func TestHistoryOfAForeignClient(t *testing.T) {
	var c RTMClient
	if _, _, err := GetMessages(c, "room", ChannelTypeMessage); err != ERROR_INVALID_PARAMETER {
		t.Fatalf("got %v", err)
	}
}
