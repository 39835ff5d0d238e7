module rtm2.local/rtm2

go 1.22

require go.uber.org/zap v1.28.0

require go.uber.org/multierr v1.10.0 // indirect
