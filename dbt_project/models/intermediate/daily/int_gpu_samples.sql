{# Every telemetry sample of every device, whichever tool took it, in one shape:
   - gpu_uuid is the physical GPU; device_uuid the GPU or its MIG instance;
   - weight is the share of the GPU a device's holders hold: 1 for a whole GPU, slices / total
     slices for a MIG instance, 0 for a MIG-mode GPU's own row (it only carries energy);
   - resource_id is the billed resource: from the sample, else the config's host mapping.
   The build's days and the minute before them, like the models it feeds: raw keeps every sample.
   A view: the two models that read it compute it faster than a table of it is written and read
   back (8.4 M rows a 1,000-GPU day: 2.5 s to write, about 1 s more in its two readers). #}
{{ config(materialized='view') }}
{% set sample_columns = ['telemetry_source', 'ts', 'host', 'resource_id', 'gpu_index', 'gpu_uuid', 'device_uuid',
                         'weight', 'gpu_name', 'util_gpu_pct', 'mem_used_bytes', 'mem_total_bytes', 'power_w',
                         'energy_mj'] %}

with samples as (
    {% for model in ['stg_nvml__gpu_samples', 'stg_nvidia_smi__gpu_samples', 'stg_dcgm__samples'] %}
    select {{ sample_columns | join(', ') }} from {{ ref(model) }} where {{ in_sample_window('ts') }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

hosts as (
    select * from {{ ref('stg_config__hosts') }}
)

select
    {% for column in sample_columns %}
    {% if column == 'resource_id' -%}
    coalesce(samples.resource_id, hosts.resource_id) as resource_id,
    {%- else -%}
    samples.{{ column }},
    {%- endif %}
    {% endfor %}
    date_trunc('hour', samples.ts) as hour_start
from samples
left join hosts on samples.host = hosts.host
