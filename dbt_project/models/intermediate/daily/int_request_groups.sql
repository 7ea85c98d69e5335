{# Requests of one hour, model, route, team and cache outcome are pooled and weighed alike
   (int_request_deployments), so the models above work on these groups rather than on every
   request: a day of millions of requests becomes thousands of rows. Failed requests count, with
   the tokens they were billed for (none). Built by day. #}
select
    concat_ws('|', cast(hour_start as varchar), model, coalesce(routed_workload, ''), team,
              cast(is_cache_hit as varchar)) as request_group,
    hour_start,
    model,
    routed_workload,
    team,
    is_cache_hit,
    count(*) as requests,
    sum(input_tokens) as input_tokens,
    sum(cached_input_tokens) as cached_input_tokens,
    sum(output_tokens) as output_tokens
from {{ ref('int_requests_attributed') }}
where {{ in_day_window('hour_start') }}
group by hour_start, model, routed_workload, team, is_cache_hit
