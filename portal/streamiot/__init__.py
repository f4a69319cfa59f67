"""Everything that speaks StreamIoT (the Mainflux 0.13.0 API): client, messages, emulator."""
