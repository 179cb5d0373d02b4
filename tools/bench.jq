# bench.jq - the jq baseline of tools/bench: field selection and the bundle clean-up of
# rules/bidlog.yaml, written with jq's own tools (ascii_downcase, capture, sub, test).
#
#   zstd -dc FILE | jq -R -c -f tools/bench.jq > /dev/null
#
# Lines are read raw (-R) and parsed with `fromjson?`: fed as a JSON stream, jq would stop
# at the first malformed line (about 0.2 % of bid-log lines are). jq has no NFKC, mojibake
# repair or timestamp parsing for these formats, so it does less than bidnorm: a lower
# bound on what a jq pipeline costs.

def str: if type == "string" then . elif type == "number" then tostring else null end;
def num: if type == "number" then . elif type == "string" then (tonumber? // null) else null end;
def trimws: sub("^\\s+"; "") | sub("\\s+$"; "");
def token: str | if . == null then null else trimws | ascii_downcase | if . == "" then null else . end end;

# chains.bundle: lower, Play / market / App Store extraction, first run of bundle
# characters, trim '._-', validate.
def bundle:
  str
  | if . == null then null else
      trimws | ascii_downcase
      # (contains / startswith first: jq 1.6 compiles a regex on every call)
      | if contains("play.google.com") then (capture("play\\.google\\.com/store/apps/details\\?(?:[^#]*?&)?id=(?<id>[^&#]*)") | .id) // . else . end
      | if startswith("market://") then (capture("^market://details\\?(?:[^#]*?&)?id=(?<id>[^&#]*)") | .id) // . else . end
      | if contains(".apple.com/") then (capture("(?:apps|itunes)\\.apple\\.com/(?:[^?#]*/)?id(?<id>[0-9]+)") | .id) // . else . end
      | if startswith("id") then (capture("^id(?<id>[0-9]+)$") | .id) // . else . end
      | ((match("[a-z0-9._-]+") | .string) // "")
      | sub("^[._-]+"; "") | sub("[._-]+$"; "") | .[:128]
      | if test("^(?:[a-z][a-z0-9_-]*(?:\\.[a-z0-9_-]+)+|[0-9]{6,12})$") then . else null end
    end;

def obj(f): (f | objects) // {};

fromjson?
| objects
| select(.event_id != null and .ts != null)
| obj(.app) as $app | obj(.device) as $dev | obj(.label) as $lab
| {
    event_id: (.event_id | str),
    ts,
    exchange: (.exchange | token),
    ad_format: (.ad_format | token),
    app_bundle: ($app.bundle | bundle),
    publisher: ($app.publisher | str),
    device_ifa: ($dev.ifa | token),
    os: ($dev.os | token),
    os_version: ($dev.os_version | str),
    device_make: ($dev.make | str),
    device_model: ($dev.model | str),
    country: ($dev.country | str | if . == null then null else trimws | ascii_upcase end),
    city: ($dev.city | str),
    language: ($dev.language | token),
    connection_type: ($dev.connection_type | token),
    installed_apps: ([($dev.installed_apps | arrays | .[]) | bundle | select(. != null)]
                     | reduce .[] as $b ([]; if index([$b]) then . else . + [$b] end) | .[:256]),
    bid_floor: (.bid_floor | num),
    device_ctr: (($dev.clicks | num) as $c | ($dev.impressions | num) as $i
                 | if $c != null and $i != null and $c >= 0 and $i > 0 then $c / $i else -1 end),
    features: (obj(.features)
               | with_entries(select((.key | test("_ago$|^(?:seconds|minutes|hours|days|weeks|months)_since_|^clearing_price$") | not)
                                     and (.value | num) != null) | .value |= num)),
    click: ($lab.click | num),
    install: ($lab.install | num)
  }
