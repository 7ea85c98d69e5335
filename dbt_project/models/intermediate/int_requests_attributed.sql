{# Each request with its team and deployment. The team comes from the first that matches: the
   API key (alias, then hash), the metadata team field, the user; else it is unattributed and
   keeps its key hash so the mapping can be fixed. Its weight is the tokens it made the GPU work
   for (rule 4): uncached input, cached input and output, each with its configured weight. #}
with requests as (
    select * from {{ ref('stg_gateway__requests') }}
),

identities as (
    select * from {{ ref('stg_config__team_identities') }}
),

settings as (
    select * from {{ ref('stg_config__settings') }}
),

workload_models as (
    select * from {{ ref('stg_config__workload_models') }}
),

with_metadata_team as (
    select
        requests.*,
        {{ json_value('requests.metadata', 'settings.metadata_team_field') }} as metadata_team,
        settings.token_weight_input,
        settings.token_weight_cached_input,
        settings.token_weight_output
    from requests
    cross join settings
)

select
    r.request_id,
    r.ts,
    r.hour_start,
    r.model,
    workload_models.workload,
    coalesce(by_alias.team, by_hash.team, by_metadata.team, by_user.team, '{{ var("unattributed_team") }}') as team,
    r.api_key_hash,
    r.api_key_alias,
    r.is_failed,
    r.input_tokens,
    r.output_tokens,
    r.cached_input_tokens,
    {{ quantity('''(r.input_tokens - coalesce(r.cached_input_tokens, 0)) * r.token_weight_input
        + coalesce(r.cached_input_tokens, 0) * r.token_weight_cached_input
        + r.output_tokens * r.token_weight_output''') }} as token_weight
from with_metadata_team as r
left join workload_models on r.model = workload_models.model
left join identities as by_alias
    on by_alias.identity_kind = 'api_key' and r.api_key_alias = by_alias.identity_value
left join identities as by_hash
    on by_hash.identity_kind = 'api_key' and r.api_key_hash = by_hash.identity_value
left join identities as by_metadata
    on by_metadata.identity_kind = 'team' and r.metadata_team = by_metadata.identity_value
left join identities as by_user
    on by_user.identity_kind = 'user' and r.user_id = by_user.identity_value
