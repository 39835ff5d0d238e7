module rtm2.local/bench-go

go 1.26.0

require (
	github.com/nats-io/nats.go v1.56.0
	golang.org/x/sys v0.48.0
	rtm2.local/rtm2 v0.0.0
)

require (
	github.com/klauspost/compress v1.20.0 // indirect
	github.com/nats-io/nkeys v0.4.16 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	go.uber.org/multierr v1.10.0 // indirect
	go.uber.org/zap v1.28.0 // indirect
	golang.org/x/crypto v0.57.0 // indirect
)

replace rtm2.local/rtm2 => ../../bindings/go
