{# A usage charge whose instance type looks like a GPU one (AWS p*/g* families, GCP a2/a3/g2,
   Azure NC/ND/NV, OCI GPU shapes, or a SKU that says GPU) but is missing from the
   gpu_instance_types seed: it is being treated as non-GPU cost. Add it to the seed.
   In a build, the charges that build wrote (macros/test_scope.sql), not every charge of every
   billing period kept: a daily run must not read a year of CUR lines again. #}
{{ config(severity='warn', where='__built_partitions__') }}

select provider_name, x_instance_type, charge_description, count(*) as charges, sum(effective_cost) as effective_cost
from {{ get_where_subquery(ref('int_billing_charges')) }}
where charge_category = 'Usage'
    and not is_gpu_compute
    and (
        lower(x_instance_type) similar to '(p[2-9][a-z]*|g[2-9][a-z]*|gr[0-9]|a2|a3|g2)[.-].*'
        or lower(x_instance_type) similar to 'standard_n[cdv].*'
        or upper(x_instance_type) like '%.GPU%'
        or upper(charge_description) like '% GPU %'
    )
group by provider_name, x_instance_type, charge_description
