{# Each request with its team and, where the log says, the deployment that served it. The team
   comes from the first that matches: the API key (alias, then hash), the LiteLLM team id, the
   metadata team field, the user; else it is unattributed and keeps its key hash so the mapping
   can be fixed. The deployment is the one the log names, else the one whose configured api_base
   pattern the request's api_base matches (the first by name when several do); requests with
   neither are pooled over the deployments of their model (int_request_deployments). Built by day. #}
with requests as (
    select * from {{ ref('int_requests') }} where {{ in_day_window('hour_start') }}
),

identities as (
    select * from {{ ref('stg_config__team_identities') }}
),

settings as (
    select * from {{ ref('stg_config__settings') }}
),

workloads as (
    select * from {{ ref('stg_config__workloads') }}
),

api_bases as (
    select * from {{ ref('stg_config__workload_api_bases') }}
),

routed_by_api_base as (
    select requests.request_id, min(api_bases.workload) as workload
    from requests
    inner join api_bases on {{ glob_match('requests.api_base', 'api_bases.api_base_pattern') }}
    group by requests.request_id
),

with_metadata_team as (
    select
        requests.*,
        {{ json_value('requests.metadata', 'settings.metadata_team_field') }} as metadata_team
    from requests
    cross join settings
)

select
    r.request_id,
    r.log_source,
    r.ts,
    r.hour_start,
    r.model,
    coalesce(named.workload, routed_by_api_base.workload) as routed_workload,
    coalesce(
        by_alias.team, by_hash.team, by_litellm.team, by_metadata.team, by_user.team, '{{ var("unattributed_team") }}'
    ) as team,
    r.api_key_hash,
    r.api_key_alias,
    r.is_failed,
    r.is_cache_hit,
    r.input_tokens,
    r.output_tokens,
    r.cached_input_tokens
from with_metadata_team as r
left join workloads as named on r.deployment = named.workload
left join routed_by_api_base on r.request_id = routed_by_api_base.request_id
left join identities as by_alias
    on by_alias.identity_kind = 'api_key' and r.api_key_alias = by_alias.identity_value
left join identities as by_hash
    -- the gateway writes sha256:<hex>, LiteLLM the bare hex of the same key
    on by_hash.identity_kind = 'api_key'
    and replace(r.api_key_hash, 'sha256:', '') = replace(by_hash.identity_value, 'sha256:', '')
left join identities as by_litellm
    on by_litellm.identity_kind = 'litellm_team' and r.litellm_team_id = by_litellm.identity_value
left join identities as by_metadata
    on by_metadata.identity_kind = 'team' and r.metadata_team = by_metadata.identity_value
left join identities as by_user
    on by_user.identity_kind = 'user' and r.user_id = by_user.identity_value
