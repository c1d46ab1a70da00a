-- Reports lost in a database failover (`core::loss`): acknowledged to the broker while the old
-- primary held them, missing on the promoted server (an asynchronous standby that had not
-- received them). The devices will not send them again; this is the record of what is gone.
CREATE TABLE report_losses (
    id          bigserial PRIMARY KEY,
    device_id   text        NOT NULL,
    seq_from    bigint      NOT NULL,
    seq_to      bigint      NOT NULL,
    after_ts    timestamptz,
    until_ts    timestamptz,
    detected_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX report_losses_device ON report_losses (device_id, detected_at);
