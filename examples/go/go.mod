module rtm2.local/examples

go 1.22

require (
	go.uber.org/zap v1.28.0
	rtm2.local/rtm2 v0.0.0
)

require go.uber.org/multierr v1.10.0 // indirect

replace rtm2.local/rtm2 => ../../bindings/go
